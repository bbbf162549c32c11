"""The optional NetworkPolicies let exactly the gang's, the operator's, Prometheus' and the API
server's traffic in: each policy selects the pods the operator and the chart really render, and
names ports those pods really have. (Validity against the 1.35 schema: test_chart's FEATURES.)"""

from __future__ import annotations

import copy

from chart.helpers import CHART, FEATURES, NAMESPACE, find, helm, one, render
from recipe_api import contract
from recipe_api.validation import parse_job
from recipe_operator import builders

VALUES = FEATURES["networkPolicy"]


def trainer_pod_template() -> dict:
    job = parse_job(
        {
            "apiVersion": "training.chefgenius.io/v1alpha1",
            "kind": "RecipeTrainingJob",
            "metadata": {"name": "flan", "namespace": "ml"},
            "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}, "resources": {"nodes": 2}},
        }
    )
    return builders.build_job(job, "uid", 1, "trainer:1")["spec"]["template"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_off_by_default():
    assert find(render(), "NetworkPolicy") == []


def test_trainer_policies_let_the_gang_the_operator_and_prometheus_in_and_nothing_else():
    objs = render(copy.deepcopy(VALUES))
    policies = [p for p in find(objs, "NetworkPolicy") if p["metadata"]["namespace"] in ("ml", "research")]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["ml", "research"]
    template = trainer_pod_template()
    (container,) = template["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    operator_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for policy in policies:
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"] and selects(
            spec["podSelector"], template["metadata"]["labels"]
        )
        gang, scrape = spec["ingress"]
        (peer,) = gang["from"]
        assert (
            selects(peer["podSelector"], template["metadata"]["labels"]) and "namespaceSelector" not in peer
        )
        (ports,) = gang["ports"]  # every TCP port: the rendezvous and NCCL's ephemeral ones
        assert ports["port"] <= port_names["rendezvous"] <= ports["endPort"] and ports["endPort"] == 65535
        assert scrape["ports"] == [{"protocol": "TCP", "port": contract.METRICS_PORT_NAME}]
        operator, prometheus = scrape["from"]
        assert operator["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
        assert selects(operator["podSelector"], operator_labels)
        assert prometheus["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def test_the_operator_policy_admits_prometheus_the_probes_and_the_api_server_on_named_ports_it_has():
    objs = render(copy.deepcopy(VALUES))
    (policy,) = [p for p in find(objs, "NetworkPolicy") if p["metadata"]["namespace"] == NAMESPACE]
    pod = one(objs, "Deployment")["spec"]["template"]
    assert selects(policy["spec"]["podSelector"], pod["metadata"]["labels"])
    (container,) = pod["spec"]["containers"]
    have = {p["name"] for p in container["ports"]}
    rules = policy["spec"]["ingress"]
    named = [port["port"] for rule in rules for port in rule["ports"]]
    assert named == ["http-metrics", "http-health", "https-webhook"] and set(named) <= have
    assert rules[2]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    without_webhook = render({**copy.deepcopy(VALUES), "webhook": {"enabled": False}})
    (policy,) = [p for p in find(without_webhook, "NetworkPolicy") if p["metadata"]["namespace"] == NAMESPACE]
    assert [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]] == [
        "http-metrics",
        "http-health",
    ]


def test_policies_need_the_namespaces_trainers_run_in():
    result = helm("template", "r", str(CHART), values={"networkPolicy": {"enabled": True}})
    assert result.returncode != 0 and "networkPolicy.enabled needs watchNamespaces" in result.stderr
