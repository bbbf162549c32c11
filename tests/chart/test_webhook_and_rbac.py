"""The chart's admission webhook (configuration + certificate) and an audit of its RBAC against every
Kubernetes API call the operator's code makes (issue 10: relaunches got 403 on a ConfigMap patch)."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest
from chart.helpers import NAMESPACE, ROOT, find, one, render
from chart.test_chart import FULLNAME, _allowed
from cryptography import x509

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
}
RTJ = ("training.chefgenius.io", "recipetrainingjobs")
CHILDREN = [("", "configmaps"), ("", "services"), ("", "persistentvolumeclaims"), ("batch", "jobs")]
LEASES = ("coordination.k8s.io", "leases")
# Every call site of recipe_operator.kube.Kube, keyed as the AST reads it: (method, apiVersion, kind),
# "*" where the code passes the object's own apiVersion/kind. Value: what each call needs.
CALLS: dict[tuple[str, str, str], list[tuple[tuple[str, str], str]]] = {
    ("get_job", "*", "*"): [(RTJ, "get")],
    ("list_all_jobs", "*", "*"): [(RTJ, "list")],
    ("patch_status", "*", "*"): [((RTJ[0], "recipetrainingjobs/status"), "patch")],
    ("delete", "*", "*"): [(RTJ, "delete")],  # ttlSecondsAfterFinished (the kind from _rtj_kind())
    ("get", "batch/v1", "Job"): [(("batch", "jobs"), "get")],
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
    ("create", "*", "*"): [(LEASES, "create")],
    ("patch", "*", "*"): [(LEASES, "patch")],
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
            kind = _literal(args[1]) if version != "*" else "*"
            found.add((node.func.attr, version, kind))
    return found


def test_the_audit_table_lists_every_api_call_the_operator_makes():
    """A new Kubernetes call in the operator fails here until its RBAC need is written down below."""
    assert kube_calls() == set(CALLS)


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["ml"]}], ids=["cluster-wide", "namespaced"])
def test_the_chart_grants_every_verb_the_operator_uses(values):
    objs = render({**values, "replicaCount": 2})
    namespaced = [r for r in find(objs, "Role") if r["metadata"]["namespace"] == "ml"]
    rules = (namespaced[0] if namespaced else one(objs, "ClusterRole"))["rules"]
    lease_rules = one(objs, "Role", f"{FULLNAME}-leader-election")["rules"]
    needs = [need for call in CALLS.values() for need in call] + KOPF_NEEDS
    missing = []
    for (group, resource), verb in needs:
        where = lease_rules if (group, resource) == LEASES else rules
        name = FULLNAME if verb in ("get", "patch") and (group, resource) == LEASES else None
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


def test_the_generated_certificate_is_signed_by_the_ca_bundle_and_names_the_service():
    objs = render({"webhook": {"enabled": True}})
    secret = one(objs, "Secret", f"{FULLNAME}-webhook-cert")
    ca = base64.b64decode(_webhook(objs)["clientConfig"]["caBundle"])
    assert ca == base64.b64decode(secret["data"]["ca.crt"])
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{FULLNAME}-webhook.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "webhook-cert", "secret": {"secretName": secret["metadata"]["name"]}} in pod["volumes"]


def test_a_local_operator_is_called_by_url_with_a_certificate_for_that_address():
    import ipaddress

    objs = render({"webhook": {"enabled": True, "url": "https://127.0.0.1:9443/"}})
    hook = _webhook(objs)
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-spec"
    assert "service" not in hook["clientConfig"]
    secret = one(objs, "Secret", f"{FULLNAME}-webhook-cert")
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


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
