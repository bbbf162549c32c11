"""The chart renders valid, least-privilege objects that wire the operator the way it reads its settings.

Every test renders with the real helm binary; core objects are validated against the official
Kubernetes 1.35 schemas (kubernetes-validate, strict), custom resources against the fields the
Prometheus operator and kopf define.
"""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart.helpers import (
    CHART,
    FEATURES,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    ROOT,
    container_env,
    find,
    helm,
    one,
    render,
)
from recipe_api import contract

FULLNAME = f"{RELEASE}-recipe-training-operator"

# ---------------------------------------------------------------- custom resources: structural checks
# Field names from the Prometheus operator's CRDs (monitoring.coreos.com/v1) and cert-manager's (v1);
# only the fields this chart uses are allowed, so a misspelt field fails here instead of being pruned
# silently by the API server.
_META = {"type": "object", "required": ["name", "namespace"]}
_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {"type": "string"},
    },
}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": {"type": "object"}, "matchExpressions": {"type": "array"}},
}
_NS_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
}
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def _endpoint(port_key: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["port"],
        "properties": {
            "port": {"type": "string"},
            "path": {"type": "string"},
            "interval": _DURATION,
            "scrapeTimeout": _DURATION,
            "honorLabels": {"type": "boolean"},
            "relabelings": {"type": "array", "items": _RELABEL},
            "metricRelabelings": {"type": "array", "items": _RELABEL},
        },
    }


def _cr(spec: dict | None) -> dict:
    props = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _META}
    if spec is not None:
        props["spec"] = spec
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


CUSTOM_RESOURCE_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _cr(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": _NS_SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": _endpoint("port")},
            },
        }
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): _cr(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": _NS_SELECTOR,
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _endpoint("port")},
            },
        }
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _cr(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string"},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]*$"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string"},
                                        "for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        }
    ),
    ("cert-manager.io/v1", "Issuer"): _cr(
        {"type": "object", "additionalProperties": False, "properties": {"selfSigned": {"type": "object"}}}
    ),
    ("cert-manager.io/v1", "Certificate"): _cr(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretName", "issuerRef", "dnsNames"],
            "properties": {
                "secretName": {"type": "string"},
                "commonName": {"type": "string"},
                "dnsNames": {"type": "array", "items": {"type": "string"}},
                "ipAddresses": {"type": "array", "items": {"type": "string"}},
                "issuerRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "group": {"type": "string"},
                    },
                },
            },
        }
    ),
}


@pytest.mark.parametrize("feature", list(FEATURES))
def test_every_rendered_object_is_valid(feature):
    """Core objects and CRDs pass the official 1.35 schemas strictly (unknown fields fail);
    Prometheus-operator and kopf objects pass the structure of their CRDs."""
    objs = render(FEATURES[feature])
    assert objs, "nothing rendered"
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM_RESOURCE_SCHEMAS:
            jsonschema.validate(obj, CUSTOM_RESOURCE_SCHEMAS[key])
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {err.path}"
            ) from err


@pytest.mark.parametrize("feature", ["defaults", "all", "watchNamespaces"])
def test_helm_lint_strict_passes(feature):
    result = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, values=FEATURES[feature])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values, typo",
    [
        ({"serviceMonitor": {"enable": True}}, "enable"),
        ({"grafana": {"dashboards": {"lable": "x"}}}, "lable"),
        ({"watchNamespace": ["ml"]}, "watchNamespace"),
        ({"trainer": {"image": "ghcr.io/x/trainer:1"}}, "trainer.image"),
    ],
)
def test_values_schema_rejects_unknown_or_mistyped_values(values, typo):
    """A misspelt value fails the install with a message naming it instead of being ignored."""
    result = helm("template", RELEASE, str(CHART), values=values)
    assert result.returncode != 0
    assert typo.split(".")[-1] in result.stderr


def test_values_yaml_documents_every_key():
    """Every setting in values.yaml has a `# --` comment right above it (cert-manager style). Sections
    (keys whose children follow) need none; keys inside a documented default object (the pieces of
    `resources`) are covered by its comment."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1
        documented = j >= 0 and lines[j].strip().startswith("# --")
        key, value = (part.strip() for part in stripped.split(":", 1))
        is_section = value == ""
        if not (documented or is_section or any(d for _, d in stack)):
            undocumented.append(key)
        stack.append((indent, documented))
    assert undocumented == []
    assert len([ln for ln in lines if ln.strip().startswith("# --")]) > 60


def test_values_schema_forbids_additional_properties_everywhere():
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and node.get("additionalProperties") is not False
            ):
                missing.append(path)
            for key, child in node.items():
                walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}[{i}]")

    walk(schema, "$")
    assert missing == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)


# ---------------------------------------------------------------- the CRD: one source, kept on uninstall


def _rendered_rtj_crd(objs):
    return one(objs, "CustomResourceDefinition", "recipetrainingjobs.training.chefgenius.io")


def test_chart_crd_is_the_generated_crd():
    """crds/recipetrainingjobs.yaml (make crds) is the only source: the chart file is the same bytes
    and the rendered CRD differs from it only by the chart's labels and the keep annotation."""
    source = ROOT / "crds" / "recipetrainingjobs.yaml"
    assert (CHART / "files" / "recipetrainingjobs.yaml").read_bytes() == source.read_bytes()
    generated = yaml.safe_load(source.read_text())
    rendered = _rendered_rtj_crd(render())
    assert rendered["spec"] == generated["spec"]
    assert rendered["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    rendered["metadata"].pop("annotations")
    rendered["metadata"].pop("labels")
    assert rendered == generated


def test_packaged_chart_carries_the_crd(tmp_path):
    """`helm package` resolves the symlink: the published chart holds the CRD as a plain file."""
    import tarfile

    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("recipe-training-operator-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.getmember("recipe-training-operator/files/recipetrainingjobs.yaml")
        assert member.isfile()
        assert tar.extractfile(member).read() == (ROOT / "crds" / "recipetrainingjobs.yaml").read_bytes()
        names = tar.getnames()
    assert not [n for n in names if "/crds/" in n]  # no kopf peering CRDs: leader election uses a Lease
    assert "recipe-training-operator/dashboards/training.json" in names


def test_crd_is_optional():
    assert (
        find(
            render({"crds": {"install": False}}),
            "CustomResourceDefinition",
            "recipetrainingjobs.training.chefgenius.io",
        )
        == []
    )


# ---------------------------------------------------------------- the operator Deployment


def test_operator_runs_locked_down_with_health_probes():
    objs = render()
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert ports[container[probe]["httpGet"]["port"]] == 8081
    assert ports["http-metrics"] == 8080
    assert container["resources"]["requests"]


def test_operator_settings_reach_the_env_vars_it_reads():
    objs = render(
        {
            "watchNamespaces": ["ml", "research"],
            "trainer": {"image": {"repository": "registry.example/trainer", "tag": "2.0"}},
            "operator": {"metricsPort": 9090, "healthPort": 9091, "progressIntervalSeconds": 15},
            "webhook": {"enabled": True},
        }
    )
    env = container_env(objs)
    assert env["RECIPE_OPERATOR_NAMESPACES"] == "ml,research"
    assert env["RECIPE_OPERATOR_TRAINER_IMAGE"] == "registry.example/trainer:2.0"
    assert env["RECIPE_OPERATOR_METRICS_PORT"] == "9090"
    assert env["RECIPE_OPERATOR_HEALTH_PORT"] == "9091"
    assert env["RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS"] == "15"
    assert env["RECIPE_OPERATOR_LEADER_ELECTION_LEASE"] == FULLNAME  # on by default
    assert env["RECIPE_OPERATOR_LEADER_ELECTION_NAMESPACE"] == NAMESPACE
    assert env["RECIPE_OPERATOR_TERMINATION_TIMEOUT_SECONDS"] == "300"
    assert env["RECIPE_OPERATOR_WEBHOOK_ENABLED"] == "true"
    assert env["RECIPE_OPERATOR_WEBHOOK_PORT"] == "9443"
    assert env["RECIPE_OPERATOR_WEBHOOK_CERT_FILE"] == "/etc/recipe-operator/webhook/tls.crt"
    webhook_svc = one(objs, "Service", f"{FULLNAME}-webhook")
    assert webhook_svc["spec"]["ports"][0]["port"] == 9443
    metrics_svc = one(objs, "Service", f"{FULLNAME}-metrics")
    assert metrics_svc["spec"]["ports"][0]["targetPort"] == "http-metrics"


def test_the_admission_policy_values_reach_the_operator():
    """Issue 23: an administrator's lists of allowed images, claims and priority classes."""
    from recipe_operator.settings import Settings

    policy = {
        "allowedImagePrefixes": ["registry.example.com/ml/", "ghcr.io/chefgenius/"],
        "allowedClaims": ["recipes"],
        "allowedPriorityClasses": ["batch-low", "batch-high"],
    }
    env = container_env(render({"policy": policy}))
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("RECIPE_OPERATOR_")})
    assert settings.policy.image_prefixes == tuple(policy["allowedImagePrefixes"])
    assert settings.policy.claims == ("recipes",)
    assert settings.policy.priority_classes == ("batch-low", "batch-high")


def test_a_webhook_client_ca_is_mounted_and_required():
    """Issue 23: with the API server's client CA the webhook refuses every other caller."""
    from recipe_operator.settings import Settings

    objs = render({"webhook": {"enabled": True, "clientCaConfigMap": "apiserver-client-ca"}})
    env = container_env(objs)
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("RECIPE_OPERATOR_")})
    assert settings.webhook_client_ca_file == "/etc/recipe-operator/webhook-client-ca/ca.crt"
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-client-ca")
    assert volume["configMap"]["name"] == "apiserver-client-ca"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["webhook-client-ca"] == "/etc/recipe-operator/webhook-client-ca"
    assert (
        container_env(render({"webhook": {"enabled": True}}))["RECIPE_OPERATOR_WEBHOOK_CLIENT_CA_FILE"] == ""
    )


def test_chart_sets_exactly_the_variables_the_operator_reads():
    """A renamed or new operator setting breaks this test until the chart follows."""
    from recipe_operator.settings import Settings, env_names

    env = container_env(render(FEATURES["all"]))
    chart_vars = {name for name in env if name.startswith("RECIPE_OPERATOR_")}
    assert chart_vars - env_names() == set(), "the chart sets variables the operator ignores"
    assert env_names() - chart_vars == set(), "the operator reads variables the chart never sets"
    # ...and the values rendered are ones the operator accepts.
    settings = Settings.from_env({k: v for k, v in env.items() if k in chart_vars})
    assert settings.leader_election_lease == FULLNAME and settings.webhook_enabled and settings.all_namespaces


def test_defaults_watch_all_namespaces_with_the_app_version_images():
    env = container_env(render())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert env["RECIPE_OPERATOR_NAMESPACES"] == ""
    assert env["RECIPE_OPERATOR_TRAINER_IMAGE"].endswith(":" + chart["appVersion"])
    assert env["RECIPE_OPERATOR_WEBHOOK_ENABLED"] == "false"
    assert "RECIPE_OPERATOR_WEBHOOK_CERT_FILE" not in env


def test_image_digest_pins_the_image():
    digest = "sha256:" + "a" * 64
    objs = render({"image": {"digest": digest}, "trainer": {"image": {"digest": digest}}})
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("@" + digest)
    assert container_env(objs)["RECIPE_OPERATOR_TRAINER_IMAGE"].endswith("@" + digest)


def test_one_replica_never_overlaps_and_several_elect_a_leader_on_a_lease():
    single = render({"leaderElection": {"enabled": False}})
    assert container_env(single)["RECIPE_OPERATOR_LEADER_ELECTION_LEASE"] == ""
    assert one(single, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert [r["metadata"]["name"] for r in find(single, "Role")] == []
    # On by default, so one replica rolls with a Lease too and the strategy never has to switch.
    assert one(render(), "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    forced = render({"leaderElection": {"enabled": False}, "replicaCount": 2})
    assert container_env(forced)["RECIPE_OPERATOR_LEADER_ELECTION_LEASE"] == FULLNAME

    ha = render({"replicaCount": 2})
    env = container_env(ha)
    assert env["RECIPE_OPERATOR_LEADER_ELECTION_LEASE"] == FULLNAME
    assert env["RECIPE_OPERATOR_LEADER_ELECTION_NAMESPACE"] == NAMESPACE
    assert one(ha, "Deployment")["spec"]["replicas"] == 2
    assert one(ha, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    role = one(ha, "Role", f"{FULLNAME}-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _allowed(role["rules"], "coordination.k8s.io", "leases", "patch", FULLNAME)
    assert not _allowed(role["rules"], "coordination.k8s.io", "leases", "patch", "kube-scheduler")
    binding = one(ha, "RoleBinding", f"{FULLNAME}-leader-election")
    assert binding["subjects"][0]["name"] == FULLNAME
    assert not [o for o in ha if o["apiVersion"].startswith("kopf.dev")]


def test_names_stay_within_63_characters_and_unique():
    release = "a-very-long-release-name-that-uses-all-53-characters"
    objs = render(FEATURES["all"] | {"watchNamespaces": ["ml"]}, release=release)
    seen = set()
    for obj in objs:
        name = obj["metadata"]["name"]
        if obj["kind"] != "CustomResourceDefinition":
            assert len(name) <= 63, name
            assert not name.endswith("-"), name
        key = (obj["kind"], obj["metadata"].get("namespace"), name)
        assert key not in seen, key
        seen.add(key)
        for value in obj["metadata"].get("labels", {}).values():
            assert len(value) <= 63, value
    (hook,) = one(objs, "ValidatingWebhookConfiguration")["webhooks"]
    assert len(hook["clientConfig"]["service"]["name"]) <= 63


def test_standard_labels_on_every_object():
    for obj in render(FEATURES["all"]):
        labels = obj["metadata"].get("labels", {})
        if obj["kind"] == "CustomResourceDefinition" and obj["metadata"]["name"].endswith("kopf.dev"):
            continue  # from crds/: Helm applies them verbatim
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


# ---------------------------------------------------------------- RBAC: least privilege


def _allowed(rules: list[dict], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    """Whether the rules allow `verb` on `resource` (on any object, or on the one named `name`)."""
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        and ("resourceNames" not in r or name in r["resourceNames"])
        for r in rules
    )


def _cluster_rules(objs) -> list[dict]:
    """Every cluster-wide rule the chart grants (all its ClusterRoles)."""
    return [rule for role in find(objs, "ClusterRole") for rule in role["rules"]]


# What the operator does in a namespace it watches (reconcile.py and kube.py: the calls it makes).
OPERATOR_NEEDS = [
    ("training.chefgenius.io", "recipetrainingjobs", "watch"),
    ("training.chefgenius.io", "recipetrainingjobs", "list"),
    ("training.chefgenius.io", "recipetrainingjobs", "delete"),  # ttlSecondsAfterFinished
    ("training.chefgenius.io", "recipetrainingjobs/status", "patch"),
    ("training.chefgenius.io", "recipetrainingjobs/finalizers", "update"),  # blockOwnerDeletion children
    ("batch", "jobs", "create"),
    ("batch", "jobs", "delete"),
    ("batch", "jobs", "watch"),
    ("", "configmaps", "create"),
    ("", "services", "create"),
    ("", "persistentvolumeclaims", "create"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "events", "create"),
]


def test_cluster_wide_install_grants_what_the_operator_does_and_no_more():
    objs = render()
    rules = _cluster_rules(objs)
    for need in OPERATOR_NEEDS:
        assert _allowed(rules, *need), need
    assert _allowed(rules, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert [r["metadata"]["name"] for r in find(objs, "Role")] == [f"{FULLNAME}-leader-election"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    assert not _allowed(rules, "", "secrets", "get")
    assert not _allowed(rules, "", "pods", "create")
    assert not _allowed(rules, "", "pods", "patch")
    assert not _allowed(rules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "create")
    binding = one(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_watch_namespaces_moves_permissions_into_a_role_per_namespace():
    objs = render({"watchNamespaces": ["ml", "research"]})
    roles = {
        r["metadata"]["namespace"]: r for r in find(objs, "Role") if r["metadata"]["namespace"] != NAMESPACE
    }
    assert set(roles) == {"ml", "research"}
    for role in roles.values():
        for need in OPERATOR_NEEDS:
            assert _allowed(role["rules"], *need), need
    bindings = {b["metadata"]["namespace"] for b in find(objs, "RoleBinding")} - {NAMESPACE}
    assert bindings == {"ml", "research"}
    cluster = _cluster_rules(objs)
    # Cluster-wide only what kopf itself needs: reading CRDs, and listing namespaces to notice watched
    # ones appear; nothing that touches another namespace's objects.
    assert sorted((r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in cluster) == [
        ("", "namespaces", ("list", "watch")),
        ("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch")),
    ]


def test_the_chart_owns_the_webhook_configuration_and_the_operator_may_only_set_its_ca_bundle():
    cert_manager = render(
        {"webhook": {"enabled": True, "certManager": {"enabled": True}}, "watchNamespaces": ["ml"]}
    )
    for rule in _cluster_rules(cert_manager):  # cert-manager injects the CA: no webhook rights at all
        assert rule["apiGroups"] != ["admissionregistration.k8s.io"], rule
    objs = render({"webhook": {"enabled": True}, "watchNamespaces": ["ml"]})
    webhook_rules = [r for r in _cluster_rules(objs) if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert webhook_rules == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": [one(objs, "ValidatingWebhookConfiguration")["metadata"]["name"]],
            "verbs": ["get", "patch"],
        }
    ]
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "https-webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]


def test_rbac_can_be_left_to_the_cluster_admin():
    objs = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops"}})
    assert not any(o["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} for o in objs)
    assert find(objs, "ServiceAccount") == []
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


# ---------------------------------------------------------------- Prometheus operator objects


def test_pod_monitor_scrapes_trainer_pods_by_the_contract_labels():
    objs = render({"podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}})
    pm = one(objs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = pm["spec"]["selector"]
    assert selector["matchLabels"] == {
        contract.LABEL_COMPONENT: contract.TRAINER_COMPONENT,
        contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
    }
    assert {"key": contract.LABEL_JOB_NAME, "operator": "Exists"} in selector["matchExpressions"]
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == contract.METRICS_PORT_NAME
    targets = {r.get("targetLabel"): r["sourceLabels"] for r in endpoint["relabelings"]}

    def meta(label: str) -> str:
        return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)

    assert targets["rtj"] == [meta(contract.LABEL_JOB_NAME)]
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    assert targets["attempt"] == [meta(contract.LABEL_ATTEMPT)]


def test_pod_monitor_follows_watch_namespaces():
    pm = one(render({"podMonitor": {"enabled": True}, "watchNamespaces": ["ml"]}), "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}


def test_service_monitor_scrapes_the_operator_metrics_service():
    objs = render({"serviceMonitor": {"enabled": True, "interval": "15s"}})
    sm = one(objs, "ServiceMonitor")
    svc = one(objs, "Service", f"{FULLNAME}-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == svc["spec"]["ports"][0]["name"]
    assert endpoint["interval"] == "15s"


def test_monitoring_objects_are_off_by_default():
    kinds = {o["kind"] for o in render()}
    assert kinds.isdisjoint({"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"})


def test_alerts_can_be_disabled_and_tuned():
    objs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "disabledAlerts": ["RecipeTrainingValidationLossRising"],
                "stalledMinutes": 45,
                "additionalAlertLabels": {"team": "ml-platform"},
            }
        }
    )
    rules = [r for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert "RecipeTrainingValidationLossRising" not in names
    assert "RecipeOperatorDown" not in names, "without a ServiceMonitor the operator's `up` does not exist"
    stalled = next(r for r in rules if r["alert"] == "RecipeTrainingStalled")
    assert "[45m]" in stalled["expr"]
    assert all(r["labels"]["team"] == "ml-platform" for r in rules)


# ---------------------------------------------------------------- Grafana dashboards


def test_dashboards_are_configmaps_for_the_grafana_sidecar():
    objs = render({"grafana": {"dashboards": {"enabled": True}}})
    cms = find(objs, "ConfigMap")
    assert len(cms) == 2
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        (content,) = cm["data"].values()
        dashboard = json.loads(content)
        names = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "namespace"} <= names
    titles = {json.loads(next(iter(cm["data"].values())))["title"] for cm in cms}
    assert titles == {"Recipe training / Jobs", "Recipe training / Operator"}

    custom = render(
        {
            "grafana": {
                "dashboards": {
                    "enabled": True,
                    "label": "dash",
                    "labelValue": "yes",
                    "namespace": "grafana",
                    "folder": "ML",
                }
            }
        }
    )
    for cm in find(custom, "ConfigMap"):
        assert cm["metadata"]["labels"]["dash"] == "yes"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == "grafana"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "ML"
