"""Issue 24 on a real control plane: what a GPU cluster needs, as far as a control plane without
GPUs can show it. The escape hatches reach the pods the Job controller creates; a gang grown past
its ReadWriteOnce volume fails and keeps it; a GPU fault moves the gang off its node; the webhook
works with the operator's own certificate, also after the certificate was replaced; the chart's
NetworkPolicies pass the API server's own validation (server-side dry run)."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from e2e.conftest import needs_local_cluster
from e2e.scenario_helpers import Kube, gpu_job, wait_for
from local_cluster import MAIN_OPERATOR

pytestmark = pytest.mark.e2e


@pytest.fixture()
def kube(api, operator):
    return Kube(api, operator)


def test_env_pull_secrets_extra_resources_and_shared_memory_render_exactly_into_the_pods(kube):
    resources = {
        "nodes": 1,
        "env": [
            {
                "name": "NCCL_SOCKET_IFNAME",
                "valueFrom": {"configMapKeyRef": {"name": "nccl", "key": "ifname"}},
            }
        ],
        "envFrom": [{"secretRef": {"name": "hf"}}],
        "imagePullSecrets": [{"name": "registry"}],
        "extraResources": {"example.com/rdma": 1},
        "sharedMemory": "2Gi",
    }
    kube.create(gpu_job("hatches", kube.ns, resources=resources))
    pods = wait_for(lambda: kube.pods("hatches", 1) or None, timeout=120, what="the pod")
    pod = pods[0].spec  # unschedulable (no node has example.com/rdma): the spec is what matters
    (container,) = pod.containers
    env = {e.name: e for e in container.env}
    assert env["NCCL_SOCKET_IFNAME"].value_from.config_map_key_ref.name == "nccl"
    assert [s.secret_ref.name for s in container.env_from] == ["hf"]
    assert [s.name for s in pod.image_pull_secrets] == ["registry"]
    assert container.resources.limits["example.com/rdma"] == "1"
    (dshm,) = [v for v in pod.volumes if v.name == "dshm"]
    assert dshm.empty_dir.medium == "Memory" and dshm.empty_dir.size_limit == "2Gi"
    assert "NCCL_SOCKET_IFNAME" not in json.dumps(kube.status("hatches"))


def test_a_one_node_job_grown_to_two_fails_with_the_reason_and_keeps_its_checkpoints(
    kube, fail_pod_with_kwok
):
    kube.create(gpu_job("grown", kube.ns, nodes=1))
    pods = wait_for(kube.running_pods("grown", 1, 1), timeout=180, what="the pod of attempt 1")
    claim = kube.core.read_namespaced_persistent_volume_claim("grown-checkpoints", kube.ns)
    assert claim.spec.access_modes == ["ReadWriteOnce"]
    kube.patch_spec("grown", {"resources": {"nodes": 2}})
    fail_pod_with_kwok(kube.ns, pods[0].metadata.name, exit_code=137, reason="OOMKilled")
    st = wait_for(kube.phase_is("grown", "Failed"), timeout=180, what="Failed")
    assert st["failure"]["reason"] == "VolumeAccessMode" and "grown-checkpoints" in st["failure"]["message"]
    assert kube.core.read_namespaced_persistent_volume_claim("grown-checkpoints", kube.ns) is not None


def test_a_gpu_fault_restarts_the_gang_off_the_faulty_node(kube, fail_pod_with_kwok):
    needs_local_cluster()
    kube.create(gpu_job("xid", kube.ns, nodes=1))
    (pod,) = wait_for(kube.running_pods("xid", 1, 1), timeout=180, what="the pod of attempt 1")
    node = pod.spec.node_name
    fail_pod_with_kwok(
        kube.ns, pod.metadata.name, exit_code=1, reason="Error",
        message="RuntimeError: CUDA error: uncorrectable ECC error encountered",
    )  # fmt: skip
    (moved,) = wait_for(kube.running_pods("xid", 2, 1), timeout=180, what="the pod of attempt 2")
    assert moved.spec.node_name != node
    st = kube.status("xid")
    assert st["failure"]["reason"] == "GPUFault" and st["avoidedNodes"] == [node]
    assert "GPUFault" in kube.event_reasons("xid")


def _webhook_secret(kube: Kube, operators) -> tuple[str, str]:
    env = operators.env()
    if not env.get("RECIPE_OPERATOR_WEBHOOK_CERT_SECRET"):
        pytest.skip(
            "the installed chart's webhook certificate is not the operator's (cert-manager, or no webhook)"
        )
    return env["RECIPE_OPERATOR_WEBHOOK_CERT_NAMESPACE"], env["RECIPE_OPERATOR_WEBHOOK_CERT_SECRET"]


def test_the_webhook_works_with_the_operators_certificate_and_after_it_is_replaced(kube, operators):
    needs_local_cluster()
    namespace, name = _webhook_secret(kube, operators)
    secret = kube.core.read_namespaced_secret(name, namespace)
    assert {"ca.crt", "ca.key", "tls.crt", "tls.key"} <= set(secret.data)

    def refused() -> bool:  # the webhook answered (over TLS, with the injected CA) and said no
        with pytest.raises(kube.ApiException) as exc:
            kube.create(gpu_job("batch", kube.ns, training={"microBatchSize": 3, "globalBatchSize": 10}))
        return "denied" in exc.value.body and "globalBatchSize" in exc.value.body

    assert refused()
    # Forced rotation: the certificate goes; the restarted operator makes a new CA and serving
    # certificate, injects the new CA, and admission works again.
    old_ca = secret.data["ca.crt"]
    kube.core.delete_namespaced_secret(name, namespace)
    operators.stop()
    operators.start(MAIN_OPERATOR)
    renewed = wait_for(
        lambda: (
            (s := kube._or_none(lambda: kube.core.read_namespaced_secret(name, namespace)))
            and s.data["ca.crt"] != old_ca
            and s
        ),
        timeout=120,
        what="a new certificate",
    )
    assert base64.b64decode(renewed.data["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert wait_for(lambda: refused() or None, timeout=120, what="the webhook answering again")


def kubectl_path(root):
    local = root / ".tools" / "bin" / "kubectl"
    return local if local.exists() else "kubectl"


def test_the_charts_network_policies_are_accepted_by_the_api_server(kube):
    from chart.helpers import CHART, ROOT, helm

    result = helm(
        "template", "r", str(CHART), "--namespace", kube.ns,
        values={"networkPolicy": {"enabled": True}, "watchNamespaces": [kube.ns], "webhook": {"enabled": True}},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    policies = [d for d in result.stdout.split("\n---") if "kind: NetworkPolicy" in d]
    assert len(policies) == 2
    kubectl = subprocess.run(
        [str(kubectl_path(ROOT)), "apply", "--dry-run=server", "-f", "-"], input="\n---".join(policies), text=True,
        capture_output=True, check=False,
    )  # fmt: skip
    assert kubectl.returncode == 0, kubectl.stderr
