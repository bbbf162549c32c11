"""The chart's admission webhook (configuration + certificate) and an audit of its RBAC against every
Kubernetes API call the operator's code makes (issue 10: relaunches got 403 on a ConfigMap patch)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from chart.helpers import CHART, KUBE_VERSION, NAMESPACE, ROOT, container_env, find, helm, one, render
from chart.test_chart import FULLNAME, _allowed

OPERATOR = ROOT / "operator" / "recipe_operator"
KUBE_METHODS = {
    "get",
    "list",
    "list_all_jobs",
    "list_events",
    "create_if_absent",
    "create",
    "delete",
    "patch",
    "patch_status",
    "get_job",
    "post_event",
    "json_patch",
}
RTJ = ("training.chefgenius.io", "recipetrainingjobs")
CHILDREN = [("", "configmaps"), ("", "services"), ("", "persistentvolumeclaims"), ("batch", "jobs")]
LEASES = ("coordination.k8s.io", "leases")
SECRETS = ("", "secrets")  # the operator's own webhook certificate
WEBHOOKS = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
# Every call site of recipe_operator.kube.Kube, keyed as the AST reads it: (method, apiVersion, kind),
# "*" where the code passes the object's own apiVersion/kind. Value: what each call needs.
CALLS: dict[tuple[str, str, str], list[tuple[tuple[str, str], str]]] = {
    ("get_job", "*", "*"): [(RTJ, "get")],
    ("list_all_jobs", "*", "*"): [(RTJ, "list")],
    ("patch_status", "*", "*"): [((RTJ[0], "recipetrainingjobs/status"), "patch")],
    ("delete", "*", "*"): [(RTJ, "delete")],  # ttlSecondsAfterFinished (the kind from _rtj_kind())
    ("get", "batch/v1", "Job"): [(("batch", "jobs"), "get")],
    ("get", "v1", "PersistentVolumeClaim"): [(("", "persistentvolumeclaims"), "get")],  # access modes
    ("list", "v1", "Pod"): [(("", "pods"), "list")],
    ("list_events", "*", "*"): [(("", "events"), "list")],
    ("post_event", "*", "*"): [(("", "events"), "create")],
    # ensure_child: create any child, and read it back on a 409 to check its owner.
    ("create_if_absent", "*", "*"): [(child, "create") for child in CHILDREN],
    ("get", "*", "*"): [(child, "get") for child in CHILDREN],
    ("patch", "v1", "ConfigMap"): [(("", "configmaps"), "patch")],  # each new attempt
    ("delete", "batch/v1", "Job"): [(("batch", "jobs"), "delete")],
    ("delete", "v1", "Pod"): [(("", "pods"), "delete")],  # a gang stuck terminating
    # leader.py
    ("get", "coordination.k8s.io/v1", "Lease"): [(LEASES, "get")],
    ("create", "*", "*"): [(LEASES, "create"), (SECRETS, "create")],
    ("patch", "*", "*"): [(LEASES, "patch")],
    # webhook_certs.py
    ("get", "v1", "Secret"): [(SECRETS, "get")],
    ("patch", "v1", "Secret"): [(SECRETS, "patch")],
    ("get", "*", "ValidatingWebhookConfiguration"): [(WEBHOOKS, "get")],
    ("json_patch", "*", "*"): [(WEBHOOKS, "patch")],
}
# What kopf itself does with the watched kinds (it lists and watches them).
KOPF_NEEDS = [
    ((g, r), v) for g, r in [RTJ, ("batch", "jobs"), ("", "pods"), ("", "events")] for v in ("list", "watch")
]


def _literal(node: ast.expr) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "*"


def kube_calls() -> set[tuple[str, str, str]]:
    """(method, apiVersion, kind) of every `<...>kube.<method>(...)` call in the operator's code."""
    found = set()
    for path in OPERATOR.rglob("*.py"):
        if path.name == "kube.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
            if name != "kube" or node.func.attr not in KUBE_METHODS:
                continue
            args = [a for a in node.args if not isinstance(a, ast.Starred)]
            version = (
                _literal(args[0])
                if len(args) >= 2 and node.func.attr in {"get", "list", "delete", "patch"}
                else "*"
            )
            kind = (
                _literal(args[1])
                if len(args) >= 2 and node.func.attr in {"get", "list", "delete", "patch"}
                else "*"
            )
            found.add((node.func.attr, version, kind))
    return found


def test_the_audit_table_lists_every_api_call_the_operator_makes():
    """A new Kubernetes call in the operator fails here until its RBAC need is written down below."""
    assert kube_calls() == set(CALLS)


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["ml"]}], ids=["cluster-wide", "namespaced"])
def test_the_chart_grants_every_verb_the_operator_uses(values):
    objs = render({**values, "replicaCount": 2, "webhook": {"enabled": True}})
    namespaced = [r for r in find(objs, "Role") if r["metadata"]["namespace"] == "ml"]
    rules = (namespaced[0] if namespaced else one(objs, "ClusterRole", FULLNAME))["rules"]
    own_rules = {  # (rules, the one name get/patch may touch) of the operator's own objects
        LEASES: (one(objs, "Role", f"{FULLNAME}-leader-election")["rules"], FULLNAME),
        SECRETS: (one(objs, "Role", f"{FULLNAME}-webhook-cert")["rules"], f"{FULLNAME}-webhook-cert"),
        WEBHOOKS: (one(objs, "ClusterRole", f"{FULLNAME}-webhook-ca")["rules"], FULLNAME),
    }
    needs = [need for call in CALLS.values() for need in call] + KOPF_NEEDS
    missing = []
    for (group, resource), verb in needs:
        where, own_name = own_rules.get((group, resource), (rules, None))
        name = own_name if verb in ("get", "patch") else None
        if not _allowed(where, group, resource, verb, name):
            missing.append(f"{verb} {resource}.{group or 'core'}")
    assert missing == []


def _webhook(objs: list[dict]) -> dict:
    (hook,) = one(objs, "ValidatingWebhookConfiguration")["webhooks"]
    return hook


def test_the_webhook_uses_its_service_never_validates_delete_and_fails_per_policy():
    from recipe_operator.settings import WEBHOOK_PATH

    objs = render({"webhook": {"enabled": True}})
    hook = _webhook(objs)
    assert hook["clientConfig"]["service"] == {
        "name": f"{FULLNAME}-webhook",
        "namespace": NAMESPACE,
        "path": WEBHOOK_PATH,
        "port": 9443,
    }
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert (
        _webhook(render({"webhook": {"enabled": True, "failurePolicy": "Ignore"}}))["failurePolicy"]
        == "Ignore"
    )
    assert find(render(), "ValidatingWebhookConfiguration") == []


def test_by_default_the_operator_owns_the_certificate_and_renders_are_identical():
    """No Secret and no caBundle in the chart: the operator creates both (webhook_certs.py), so two
    `helm template` runs render byte for byte the same (lookup is empty there: Argo CD, Flux)."""
    values = {"webhook": {"enabled": True}}
    args = ("template", "r", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION)
    first, second = helm(*args, values=values), helm(*args, values=values)  # not the cached render
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and "ValidatingWebhookConfiguration" in first.stdout
    objs = render(values)
    assert find(objs, "Secret") == [] and "caBundle" not in _webhook(objs)["clientConfig"]
    env = container_env(objs)
    assert env["RECIPE_OPERATOR_WEBHOOK_CERT_SECRET"] == f"{FULLNAME}-webhook-cert"
    assert (
        env["RECIPE_OPERATOR_WEBHOOK_CONFIGURATION"]
        == one(objs, "ValidatingWebhookConfiguration")["metadata"]["name"]
    )
    assert f"{FULLNAME}-webhook.{NAMESPACE}.svc" in env["RECIPE_OPERATOR_WEBHOOK_DNS_NAMES"].split(",")
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-cert")
    assert volume["emptyDir"]["medium"] == "Memory"  # the operator writes the files; no key on disk
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-cert")
    assert mount["readOnly"] is False


def test_a_local_operator_is_called_by_url_with_a_certificate_for_that_address():
    objs = render({"webhook": {"enabled": True, "url": "https://127.0.0.1:9443/"}})
    hook = _webhook(objs)
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-spec"
    assert "service" not in hook["clientConfig"]
    assert "127.0.0.1" in container_env(objs)["RECIPE_OPERATOR_WEBHOOK_DNS_NAMES"].split(",")


def test_cert_manager_issues_the_certificate_and_injects_its_ca():
    objs = render({"webhook": {"enabled": True, "certManager": {"enabled": True}}})
    cert = one(objs, "Certificate")
    assert cert["spec"]["secretName"] == f"{FULLNAME}-webhook-cert"
    assert cert["spec"]["issuerRef"]["name"] == one(objs, "Issuer")["metadata"]["name"]
    config = one(objs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{FULLNAME}-webhook-cert"
    )
    assert find(objs, "Secret") == [] and "caBundle" not in _webhook(objs)["clientConfig"]
    own = render(
        {
            "webhook": {
                "enabled": True,
                "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
            }
        }
    )
    assert find(own, "Issuer") == []
    assert one(own, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_webhook_path_is_the_one_kopf_serves():
    """kopf serves a validating handler at /<handler id>; the chart's helper must say the same."""
    from recipe_operator.settings import WEBHOOK_PATH

    helpers = (ROOT / "charts" / "recipe-training-operator" / "templates" / "_helpers.tpl").read_text()
    assert f"\n{WEBHOOK_PATH}\n" in helpers
    assert "validate-spec" in (OPERATOR / "handlers.py").read_text()
    assert Path(OPERATOR / "handlers.py").read_text().count('id="validate-spec"') == 1
