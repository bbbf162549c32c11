"""Scenarios on the local cluster's real node: a kubelet, containerd and runc run our own trainer image
(scripts/images/), so exit codes, OOM kills, image pulls, SIGTERM on deletion, DNS and volume ownership
are decided by the real components, not by kwok's stages or a test.

The node is tainted `chefgenius.io/real-node=true:NoSchedule` (so kwok-shaped scenarios never land on
it): a job meant for it selects and tolerates it. Its 2 cores hold the operator, CoreDNS and one
2-pod gang of 600m each, so these scenarios run one at a time (pytest runs tests in order)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import needs_local_cluster
from e2e.scenario_helpers import OPERATOR_NAMESPACE, Kube, wait_for
from recipe_api.contract import LABEL_JOB_NAME
from recipe_api.v1alpha1 import API_GROUP, API_VERSION

pytestmark = pytest.mark.e2e

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
ROOT = Path(__file__).resolve().parents[2]


def _setting(script: str, name: str) -> str:
    """A setting of the cluster scripts (`NAME=value`, or `NAME=${OVERRIDE:-default}` with the
    override honoured), so the scenarios never keep a second copy of a name the scripts choose."""
    text = (ROOT / "scripts" / script).read_text()
    match = re.search(rf"^{name}=(?:\$\{{(\w+):-([^}}]*)\}}|(\S+))$", text, re.M)
    assert match, f"no {name}= in scripts/{script}"
    override, default, value = match.groups()
    return os.environ.get(override, default) if override else value


REAL_NODE = _setting("cluster/lib.sh", "REAL_NODE")
REAL_NODE_LABEL = _setting("cluster/lib.sh", "REAL_NODE_LABEL")  # and its NoSchedule taint
REAL_NODE_STORAGE_CLASS = _setting("cluster/lib.sh", "REAL_NODE_STORAGE_CLASS")  # local volumes
PAUSE_VERSION = _setting("images/versions.sh", "PAUSE_VERSION")
SAMPLE = "/opt/chef-genius/examples/data/recipenlg_sample_999.csv"  # bundled in the trainer image


@pytest.fixture()
def kube(api, operator):
    needs_local_cluster()
    return Kube(api, operator)


def real_node_job(name: str, ns: str, *, nodes: int = 2, steps: int = 60, **overrides: Any) -> dict:
    """A quickstart-sized job (a 2-layer T5 built from config) on the real node's CPUs, with the
    operator's default trainer image and the sample the image carries."""
    spec: dict[str, Any] = {
        "model": {
            "name": "tiny-recipe-t5",
            "init": "scratch",
            "task": "seq2seq",
            "config": {
                "model_type": "t5",
                "vocab_size": 1000,
                "d_model": 64,
                "d_ff": 128,
                "d_kv": 16,
                "num_heads": 4,
                "num_layers": 1,
                "num_decoder_layers": 1,
            },
        },
        "dataset": {"path": SAMPLE, "validationFraction": 0.05},
        "training": {
            "maxSteps": steps,
            "microBatchSize": 4,
            "gradientAccumulationSteps": 1,
            "learningRate": 5.0e-3,
            "maxSourceLength": 32,
            "maxTargetLength": 96,
            "precision": "fp32",
        },
        "lora": {"enabled": False},
        "validation": {"everySteps": 1000, "maxBatches": 2, "samples": 0},
        "checkpoint": {
            "everySteps": 10,
            "keepLast": 2,
            "volume": {"size": "1Gi", "storageClassName": REAL_NODE_STORAGE_CLASS},
        },
        "resources": {
            "nodes": nodes,
            "gpusPerNode": 0,
            "cpu": "600m",
            "memory": "2560Mi",
            "nodeSelector": {REAL_NODE_LABEL: "true"},
            "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        },
        # Long enough for the stop checkpoint the pod supervisor writes on the kubelet's SIGTERM.
        "runPolicy": {"terminationGracePeriodSeconds": 60, "backoffLimit": 2},
    }
    for key, value in overrides.items():
        merged = isinstance(value, dict) and isinstance(spec.get(key), dict)
        spec[key] = {**spec[key], **value} if merged else value
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _log(kube: Kube, pod: str) -> str:
    return kube.core.read_namespaced_pod_log(pod, kube.ns)


def _index(pod: Any) -> int:
    return int(pod.metadata.labels[COMPLETION_INDEX])


def test_the_real_node_is_ready_on_containerd_and_runs_coredns(kube):
    node = kube.core.read_node(REAL_NODE)
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node.metadata.labels[REAL_NODE_LABEL] == "true"
    coredns = kube.core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
    assert [p.spec.node_name for p in coredns] == [REAL_NODE]
    assert coredns[0].status.phase == "Running"


def test_the_charts_operator_runs_from_its_image_on_the_real_node_and_takes_over(kube, operators):
    """`make cluster`'s default: the chart's Deployment runs the operator image on the real node,
    under its ServiceAccount (a real token, RBAC), behind its webhook Service, holding its Lease."""
    operators.stop()  # the suite's local operator steps down; the Lease goes to the pod
    operators.upgrade_chart(in_cluster=True)
    selector = "app.kubernetes.io/name=recipe-training-operator"

    def ready_pod() -> Any:
        pods = kube.core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=selector).items
        ready = [
            p
            for p in pods
            if p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or [])
        ]
        return ready[0] if ready else None

    pod = wait_for(ready_pod, timeout=180, what="the operator pod Ready")
    assert pod.spec.node_name == REAL_NODE and pod.spec.containers[0].image.startswith("ghcr.io/chefgenius/")
    wait_for(lambda: kube.lease_holder().startswith(pod.metadata.name), timeout=120, what="the pod leading")
    bad = real_node_job("bad", kube.ns, nodes=1)
    bad["spec"]["training"]["globalBatchSize"] = 10  # not a multiple of microBatchSize 4
    with pytest.raises(kube.ApiException) as refused:
        kube.create(bad)
    assert "spec.training.globalBatchSize" in refused.value.body  # the pod's webhook answered
    kube.create(real_node_job("good", kube.ns, nodes=1))
    wait_for(lambda: kube.job("good"), timeout=120, what="the Job the in-cluster operator creates")


def test_a_two_pod_gang_trains_and_a_deleted_pod_resumes_from_its_stop_checkpoint(kube):
    """The whole path of a user's job on a real kubelet: the operator's default trainer image, peers
    meeting at <job>-0.<service> through CoreDNS, rank 0's /metrics scraped over the pod network into
    status.progress, checkpoints on a local PersistentVolume owned through fsGroup, and a pod deleted
    mid-run: the kubelet's SIGTERM reaches the pod supervisor, the stop checkpoint is written in the
    grace period, and attempt 2 resumes from it."""
    # Long enough (about 100 s of training) for a checkpoint to reach status before the deletion.
    kube.create(
        real_node_job("gang", kube.ns, steps=1000, training={"epochs": 50}, checkpoint={"everySteps": 100})
    )
    pods = wait_for(kube.running_pods("gang", 1, 2), timeout=300, what="2 running pods")
    assert {p.spec.node_name for p in pods} == {REAL_NODE}
    assert all(p.status.pod_ip and p.status.pod_ip.startswith("10.88.") for p in pods)
    # Progress from rank 0's /metrics, and a periodic checkpoint, before the pod is deleted.
    st = wait_for(
        lambda: (s := kube.status("gang")).get("lastCheckpoint", {}).get("step") and s,
        timeout=600,
        what="a checkpoint in status",
    )
    assert st["progress"]["step"] >= st["lastCheckpoint"]["step"] > 0
    victim = next(p for p in pods if _index(p) == 1)
    kube.core.delete_namespaced_pod(victim.metadata.name, kube.ns)
    wait_for(kube.job_of_attempt("gang", 2), timeout=300, what="attempt 2")
    done = wait_for(kube.phase_is("gang", "Succeeded", "Failed"), timeout=900, what="the end")
    assert done["phase"] == "Succeeded", done.get("failure")
    assert done["attempt"] == 2
    rank0 = next(p for p in kube.pods("gang", 2) if _index(p) == 0)
    resumed = re.search(r"resumed from step (\d+)", _log(kube, rank0.metadata.name))
    assert resumed, "attempt 2 did not resume from a checkpoint"
    assert int(resumed.group(1)) >= st["lastCheckpoint"]["step"]
    # The documented recovery: delete the finished job, create it again with more steps; its
    # checkpoint claim outlived it, so the new job resumes where the old one ended.
    final_step = done["lastCheckpoint"]["step"]
    kube.delete_rtj("gang")
    wait_for(lambda: kube.rtj("gang") is None and not kube.pods("gang"), timeout=180, what="the job gone")
    kube.create(real_node_job("gang", kube.ns, steps=final_step + 10, training={"epochs": 50}))
    again = wait_for(
        kube.phase_is("gang", "Succeeded", "Failed"), timeout=900, what="the re-created job's end"
    )
    assert again["phase"] == "Succeeded", again.get("failure")
    rank0 = next(p for p in kube.pods("gang", 1) if _index(p) == 0)
    assert f"resumed from step {final_step}" in _log(kube, rank0.metadata.name)


def test_an_image_that_does_not_exist_fails_with_the_kubelets_reason(kube):
    body = real_node_job(
        "nopull",
        kube.ns,
        nodes=1,
        runPolicy={"pendingTimeoutSeconds": 20, "terminationGracePeriodSeconds": 2},
    )
    # A registry at 127.0.0.1:1 refuses at once: the pull fails without a DNS query or a packet
    # leaving the machine (a registry name would send containerd's lookup to the nameserver).
    body["spec"]["resources"]["image"] = "127.0.0.1:1/chefgenius/no-such-image:0.0.0"
    kube.create(body)
    st = wait_for(kube.phase_is("nopull", "Failed"), timeout=180, what="Failed")
    assert st["failure"]["reason"] in ("ErrImagePull", "ImagePullBackOff"), st["failure"]
    assert st["attempt"] == 1, "an image that cannot be pulled is not retried"


def test_a_container_over_its_memory_limit_is_oomkilled_and_retried(kube):
    body = real_node_job(
        "oom", kube.ns, nodes=1, runPolicy={"backoffLimit": 1, "terminationGracePeriodSeconds": 2}
    )
    body["spec"]["resources"]["memory"] = "200Mi"  # importing torch alone needs more
    kube.create(body)
    wait_for(kube.job_of_attempt("oom", 2), timeout=300, what="attempt 2 after the OOM kill")
    st = wait_for(kube.phase_is("oom", "Failed"), timeout=300, what="Failed after the retries")
    assert st["failure"]["reason"] == "OOMKilled", st["failure"]


def test_a_container_that_cannot_start_fails_at_once_not_as_a_crash(kube):
    """The pause image has no `python`: containerd's StartError (exit 128), not a Signaled crash
    retried until backoffLimit."""
    body = real_node_job(
        "nostart", kube.ns, nodes=1, runPolicy={"backoffLimit": 3, "terminationGracePeriodSeconds": 2}
    )
    body["spec"]["resources"]["image"] = f"registry.k8s.io/pause:{PAUSE_VERSION}"
    kube.create(body)
    st = wait_for(kube.phase_is("nostart", "Failed"), timeout=180, what="Failed")
    assert st["failure"]["reason"] == "StartError" and st["attempt"] == 1, st["failure"]


def test_a_volume_that_cannot_mount_fails_with_the_reason_after_the_pending_timeout(kube):
    """A local volume whose directory does not exist: the kubelet's FailedMount keeps the pod in
    ContainerCreating, which used to hold the job in Launching until activeDeadlineSeconds."""
    pv = f"pv-missing-{kube.ns}"
    kube.core.create_persistent_volume(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "storageClassName": "",
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "claimRef": {"namespace": kube.ns, "name": "missing"},
                "local": {"path": "/nonexistent/chef-genius-e2e"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [REAL_NODE],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )
    try:
        kube.core.create_namespaced_persistent_volume_claim(
            kube.ns,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "missing"},
                "spec": {
                    "storageClassName": "",
                    "volumeName": pv,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        body = real_node_job(
            "nomount",
            kube.ns,
            nodes=1,
            runPolicy={"pendingTimeoutSeconds": 20, "terminationGracePeriodSeconds": 2},
        )
        body["spec"]["checkpoint"]["volume"] = {"claimName": "missing"}
        kube.create(body)
        st = wait_for(kube.phase_is("nomount", "Failed"), timeout=240, what="Failed")
        assert st["failure"]["reason"] == "ContainerCreating", st["failure"]
    finally:
        kube.core.delete_persistent_volume(pv)


def test_a_drained_node_is_a_disruption_not_a_failure_of_the_job(kube):
    """kubectl drain evicts the gang through the eviction API: the restart is counted as a
    disruption, not against backoffLimit 0, and the next attempt waits for the node to come back."""
    body = real_node_job(
        "drained",
        kube.ns,
        nodes=1,
        steps=100000,
        runPolicy={"backoffLimit": 0, "terminationGracePeriodSeconds": 30},
    )
    kube.create(body)
    wait_for(kube.running_pods("drained", 1, 1), timeout=300, what="the pod running")
    kubectl = [str(ROOT / ".tools" / "bin" / "kubectl")]
    selector = f"{LABEL_JOB_NAME}=drained"
    try:
        subprocess.run(
            [
                *kubectl,
                "drain",
                REAL_NODE,
                "--pod-selector",
                selector,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=120s",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        st = wait_for(
            lambda: (s := kube.status("drained")).get("disruptions") and s, timeout=180, what="a disruption"
        )
        assert st["failure"]["reason"] == "Evicted" and st["phase"] != "Failed"
        wait_for(kube.job_of_attempt("drained", 2), timeout=120, what="attempt 2")
    finally:
        subprocess.run([*kubectl, "uncordon", REAL_NODE], check=True, capture_output=True, timeout=60)
    wait_for(kube.running_pods("drained", 2, 1), timeout=300, what="attempt 2 running after uncordon")
    assert kube.status("drained")["phase"] != "Failed"
