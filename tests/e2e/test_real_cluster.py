"""Issue 10's scenarios on a real control plane: RBAC, admission, the Job controller, the scheduler
and the garbage collector decide here, not a test. Each listed defect has a scenario that failed
before its fix (named in the docstring). Pods run on kwok's GPU nodes; kwok's stages move them.
Scenarios that start, kill or reconfigure operators, or fail pods through kwok, need the local
control plane of scripts/cluster/ (conftest.py skips them elsewhere)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from e2e.scenario_helpers import (
    Kube,
    gpu_job,
    reconciles,
    stays,
    wait_for,
)
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

pytestmark = pytest.mark.e2e


@pytest.fixture()
def kube(api, operator):
    return Kube(api, operator)


def _running(kube: Kube, name: str, attempt: int = 1, nodes: int = 2) -> list:
    pods = wait_for(
        kube.running_pods(name, attempt, nodes), timeout=180, what=f"{nodes} pods of attempt {attempt}"
    )
    wait_for(kube.phase_is(name, "Running"), timeout=120, what="phase Running")
    return pods


def test_a_gpu_job_becomes_an_indexed_job_whose_pods_run_on_gpu_nodes(kube):
    created = kube.create(gpu_job("gang", kube.ns))
    job = wait_for(lambda: kube.job("gang"), what="the Indexed Job")
    assert job.spec.completion_mode == "Indexed" and job.spec.completions == job.spec.parallelism == 2
    assert job.metadata.owner_references[0].uid == created["metadata"]["uid"]
    pods = _running(kube, "gang")
    assert {p.spec.node_name for p in pods} == {"gpu-node-0", "gpu-node-1"}  # 8 GPUs each: one pod per node
    for pod in pods:
        (container,) = pod.spec.containers
        assert container.resources.limits["nvidia.com/gpu"] == "8"
    st = kube.status("gang")
    assert st["attempt"] == 1 and any(
        c["type"] == "Running" and c["status"] == "True" for c in st["conditions"]
    )


def test_an_oom_killed_pod_restarts_the_gang_as_attempt_two_which_runs(kube, fail_pod_with_kwok):
    """Defect 1: attempt 2 patches the existing ConfigMap; without `patch` in the chart's RBAC the
    relaunch got 403 after the status said Launching and no Job was ever created."""
    kube.create(gpu_job("oom", kube.ns))
    pods = _running(kube, "oom")
    fail_pod_with_kwok(kube.ns, pods[0].metadata.name, exit_code=137, reason="OOMKilled")
    wait_for(kube.job_of_attempt("oom", 2), timeout=180, what="the Job of attempt 2")
    _running(kube, "oom", attempt=2)
    st = kube.status("oom")
    assert (st["attempt"], st["restarts"], st["failure"]["reason"]) == (2, 1, "OOMKilled")
    assert st["failure"]["exitCode"] == 137
    assert "Restarting" in kube.event_reasons("oom")


def test_suspend_removes_the_pods_and_unsuspend_runs_attempt_two(kube):
    kube.create(gpu_job("pause", kube.ns, nodes=1))
    _running(kube, "pause", nodes=1)
    kube.patch_spec("pause", {"suspend": True})
    wait_for(kube.phase_is("pause", "Suspended"), what="Suspended")
    wait_for(lambda: kube.job("pause") is None and not kube.pods("pause"), timeout=180, what="the gang gone")
    assert kube.core.read_namespaced_persistent_volume_claim("pause-checkpoints", kube.ns)
    kube.patch_spec("pause", {"suspend": False})
    _running(kube, "pause", attempt=2, nodes=1)


def test_a_kueue_labelled_job_is_created_suspended_and_runs_once_admitted(kube):
    body = gpu_job("queued", kube.ns, nodes=1)
    body["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team-a"}
    kube.create(body)
    job = wait_for(lambda: kube.job("queued"), what="the Job")
    assert job.spec.suspend is True and job.metadata.labels["kueue.x-k8s.io/queue-name"] == "team-a"
    st = wait_for(kube.phase_is("queued", "Pending"), what="Pending")
    assert any(c["type"] == "Queued" and c["status"] == "True" for c in st["conditions"])

    def job_controller_saw_it_suspended() -> bool:  # it writes the Suspended condition itself
        conditions = kube.job("queued").status.conditions or []
        return any(c.type == "Suspended" and c.status == "True" for c in conditions)

    # the Job controller creates nothing while suspended
    assert stays(lambda: kube.pods("queued"), job_controller_saw_it_suspended, "no pods while queued") == []
    kube.batch.patch_namespaced_job("queued", kube.ns, {"spec": {"suspend": False}})  # Kueue's admission
    _running(kube, "queued", nodes=1)


def test_ttl_after_finished_deletes_the_job_and_the_garbage_collector_its_children(
    kube, finish_pod_with_kwok
):
    kube.create(gpu_job("brief", kube.ns, nodes=1, runPolicy={"ttlSecondsAfterFinished": 5}))
    (pod,) = _running(kube, "brief", nodes=1)
    finish_pod_with_kwok(kube.ns, pod.metadata.name)
    wait_for(kube.phase_is("brief", "Succeeded"), timeout=180, what="Succeeded")
    wait_for(lambda: kube.rtj("brief") is None, timeout=120, what="the job deleted by its TTL")
    wait_for(lambda: _collected_but_the_checkpoints(kube, "brief"), timeout=120, what="children collected")


def test_an_unschedulable_job_fails_at_the_pending_timeout(kube):
    kube.create(gpu_job("too-big", kube.ns, nodes=1, gpus=16, runPolicy={"pendingTimeoutSeconds": 15}))
    st = wait_for(kube.phase_is("too-big", "Failed"), timeout=180, what="Failed")
    assert st["failure"]["reason"] == "Unschedulable" and "nvidia.com/gpu" in st["failure"]["message"]
    wait_for(lambda: kube.job("too-big") is None, timeout=120, what="the Job removed")


def test_the_crd_schema_refuses_a_malformed_spec(kube):
    body = gpu_job("typed", kube.ns)
    body["spec"]["resources"]["nodes"] = "two"
    with pytest.raises(kube.ApiException) as exc:
        kube.create(body)
    assert exc.value.status == 422 and "spec.resources.nodes" in exc.value.body


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        (
            "batch",
            {"training": {"microBatchSize": 3, "globalBatchSize": 10}},
            "spec.training.globalBatchSize",
        ),
        ("1st-run", {}, "metadata.name"),  # defect 4: its Service would get 422 mid-launch
        (
            "quantity",
            {"resources": {"cpu": "1.2.3"}},
            "spec.resources.cpu",
        ),  # defect 4: the CRD pattern passes it
    ],
)
def test_the_admission_webhook_over_https_refuses_what_the_schema_cannot_see(kube, name, change, field):
    """Defect 3: the API server reaches the operator's webhook through the chart's Service and
    certificate; kopf's self-managed configuration pointed at a host it could not resolve."""
    with pytest.raises(kube.ApiException) as exc:
        kube.create(gpu_job(name, kube.ns, **change))
    message = json.loads(exc.value.body)["message"]
    assert exc.value.status in (400, 422) and field in message
    assert 'admission webhook "validate.recipetrainingjobs.training.chefgenius.io" denied' in message


def test_a_typo_in_a_field_is_refused_by_kubectl_and_strict_clients_and_named_to_the_others(kube, tmp_path):
    """The CRD's structural schema prunes unknown fields before the webhook sees them, so what a
    client gets for spec.training.lerningRate is the API server's field validation: kubectl
    (strict by default) and a Python client asking for fieldValidation=Strict are refused with the
    field named; a client that asks for nothing gets a Warning header naming it and a job whose
    learning rate is the default (docs/install.md, "Typos in a manifest")."""
    body = gpu_job("typo", kube.ns, nodes=1, training={"lerningRate": 0.1})
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(json.dumps(body))
    kubectl = os.environ.get(
        "KUBECTL", str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl")
    )
    refused = subprocess.run(
        [kubectl, "create", "-f", str(manifest)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and 'unknown field "spec.training.lerningRate"' in refused.stderr, refused
    with pytest.raises(kube.ApiException) as exc:
        kube.custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, kube.ns, PLURAL, body, field_validation="Strict"
        )
    assert exc.value.status == 400
    assert 'unknown field "spec.training.lerningRate"' in json.loads(exc.value.body)["message"]
    assert kube.rtj("typo") is None
    created, _, headers = kube.custom.create_namespaced_custom_object_with_http_info(
        API_GROUP, API_VERSION, kube.ns, PLURAL, body
    )
    warning = headers.get("Warning", "")  # 299 - "unknown field \\"spec.training.lerningRate\\""
    assert "unknown field" in warning and "spec.training.lerningRate" in warning, dict(headers)
    assert "lerningRate" not in created["spec"].get("training", {})  # pruned: the default rate applies


def test_a_dead_operator_never_blocks_deleting_a_job(kube, operators):
    """Defect 3: validation on DELETE with failurePolicy Fail made jobs undeletable while the
    operator was down (and one that no longer validated, forever)."""
    kube.create(gpu_job("orphaned", kube.ns, nodes=1))
    wait_for(lambda: kube.job("orphaned"), what="the Job")
    operators.kill()
    kube.delete_rtj("orphaned")
    wait_for(lambda: kube.rtj("orphaned") is None, what="the job deleted")
    with pytest.raises(kube.ApiException) as exc:  # failurePolicy Fail: creates wait for the webhook
        kube.create(gpu_job("while-down", kube.ns, nodes=1))
    assert "failed calling webhook" in exc.value.body


def test_deleting_a_job_garbage_collects_its_children(kube):
    kube.create(gpu_job("collected", kube.ns, nodes=1))
    _running(kube, "collected", nodes=1)
    assert all(kube.children("collected").values())
    kube.delete_rtj("collected")
    wait_for(
        lambda: _collected_but_the_checkpoints(kube, "collected"), timeout=120, what="children collected"
    )
    wait_for(lambda: not kube.pods("collected"), timeout=120, what="pods gone")


def _collected_but_the_checkpoints(kube: Kube, name: str) -> bool:
    """Every child is gone but the checkpoint claim, which has no owner: a job re-created under the
    same name resumes from it (the documented recovery); `kubectl delete pvc` releases it."""
    children = kube.children(name)
    return children.pop("PersistentVolumeClaim") == [f"{name}-checkpoints"] and not any(children.values())


def test_two_replicas_elect_one_leader_and_the_other_takes_over_when_it_dies(kube, operators):
    """Defect 2: with replicaCount 2 kopf peering at one priority froze both replicas (and the
    operator's own loops kept acting in the frozen one)."""
    operators.start("standby")  # the chart's default: leader election on a Lease
    leader = wait_for(kube.lease_holder, what="a Lease holder")
    kube.create(gpu_job("led", kube.ns, nodes=1))
    _running(kube, "led", nodes=1)
    counts = {name: reconciles(operators.metrics_port(name), kube.ns) for name in ("operator", "standby")}
    assert sorted(count > 0 for count in counts.values()) == [False, True], counts  # exactly one acts
    active = "operator" if counts["operator"] else "standby"
    operators.kill(active)
    wait_for(lambda: (h := kube.lease_holder()) and h != leader, timeout=60, what="the other replica leading")
    kube.create(gpu_job("after-failover", kube.ns, nodes=1))
    _running(kube, "after-failover", nodes=1)


def test_an_operator_killed_mid_launch_leaves_no_duplicate_children(kube, operators):
    """Children have fixed names, so a second create is answered 409 and can never show as a
    second object: a duplicate launch shows as a child or pod with a new uid (deleted and made
    again), or a second attempt. Each restarted operator is seen reconciling the job (its own
    reconcile counter) before anything is compared, and nothing may change for a while after."""
    kube.create(gpu_job("interrupted", kube.ns, nodes=1))
    wait_for(lambda: kube.status("interrupted").get("phase"), what="the launch begun")
    operators.kill(sig=signal.SIGKILL)
    operators.start("operator")
    _running(kube, "interrupted", nodes=1)
    launched = kube.identities("interrupted")
    assert sorted(key.split("/")[0] for key in launched) == [
        "ConfigMap",
        "Job",
        "PersistentVolumeClaim",
        "Pod",
        "Service",
    ], launched
    operators.kill(sig=signal.SIGKILL)
    operators.start("operator")
    port = operators.metrics_port()

    def reconciled() -> bool:  # the new process counts from 0
        return reconciles(port, kube.ns) >= 1

    assert stays(lambda: kube.identities("interrupted"), reconciled, "the launched children") == launched
    st = kube.status("interrupted")
    assert (st["phase"], st["attempt"], st.get("restarts", 0)) == ("Running", 1, 0), st


def test_a_steady_running_job_writes_no_status(kube, operators):
    """Defect 6: the status merge patch never converged, so each event and each 30 s resync wrote
    every job's status. The operator's own reconcile counter shows it looked at the job twice more
    (at least one periodic resync) while the resourceVersion stayed the same."""
    kube.create(gpu_job("steady", kube.ns, nodes=1))
    _running(kube, "steady", nodes=1)
    port = operators.metrics_port()
    seen = reconciles(port, kube.ns)
    wait_for(lambda: reconciles(port, kube.ns) > seen, what="a reconcile after Running was written")
    after_running = reconciles(port, kube.ns)
    stays(
        lambda: kube.rtj("steady")["metadata"]["resourceVersion"],
        lambda: reconciles(port, kube.ns) >= after_running + 2,
        "the steady job's resourceVersion",
        timeout=150,  # two 30 s resync periods, with room for a loaded machine
    )


def test_a_same_named_job_it_does_not_own_is_never_adopted_or_deleted(kube):
    """Defect 8: the operator deleted a foreign Job of its name as if it were an old attempt."""
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "taken", "labels": {"app": "someone-else"}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            },
        },
    }
    kube.batch.create_namespaced_job(kube.ns, foreign)
    kube.create(gpu_job("taken", kube.ns, nodes=1))
    st = wait_for(kube.phase_is("taken", "Failed"), what="Failed")
    assert (
        st["failure"]["reason"] == "ConflictingObject" and f"Job {kube.ns}/taken" in st["failure"]["message"]
    )
    job = kube.job("taken")
    assert job is not None and job.metadata.deletion_timestamp is None and not job.metadata.owner_references


def test_a_missing_priority_class_fails_the_job_with_the_api_message(kube):
    """Defect 4: the Priority admission plugin refuses the pods; the Job controller says so only in
    FailedCreate events, and the job sat in Launching forever."""
    kube.create(gpu_job("urgent", kube.ns, nodes=1, resources={"priorityClassName": "no-such-class"}))
    st = wait_for(kube.phase_is("urgent", "Failed"), timeout=120, what="Failed")
    assert st["failure"]["reason"] == "PriorityClassNotFound"
    assert "no PriorityClass with name no-such-class" in st["failure"]["message"]


def test_an_exhausted_quota_shows_in_status_then_fails_at_the_pending_timeout(kube):
    """Defect 4: a ResourceQuota refusal showed only as events on the Job."""
    kube.core.create_namespaced_resource_quota(
        kube.ns,
        {"metadata": {"name": "no-gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "0"}}},
    )
    wait_for(  # the quota controller fills in status before admission enforces the quota
        lambda: (kube.core.read_namespaced_resource_quota("no-gpus", kube.ns).status.hard or {}).get(
            "requests.nvidia.com/gpu"
        ),
        what="the quota's status",
    )
    kube.create(gpu_job("starved", kube.ns, nodes=1, runPolicy={"pendingTimeoutSeconds": 20}))
    st = wait_for(
        lambda: (
            (s := kube.status("starved"))
            and any(c["type"] == "CreateFailed" for c in s.get("conditions", []))
            and s
        ),
        timeout=120,
        what="the CreateFailed condition",
    )
    (cond,) = [c for c in st["conditions"] if c["type"] == "CreateFailed"]
    assert cond["reason"] == "QuotaExceeded" and "exceeded quota" in cond["message"]
    st = wait_for(kube.phase_is("starved", "Failed"), timeout=120, what="Failed at the pending timeout")
    assert st["failure"]["reason"] == "QuotaExceeded"


def test_trainer_pods_are_admitted_under_the_restricted_pod_security_level(api, kube):
    kube.core.patch_namespace(
        kube.ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    kube.create(gpu_job("locked-down", kube.ns, nodes=1))
    _running(kube, "locked-down", nodes=1)


def test_a_gang_stuck_terminating_is_escalated_and_the_next_attempt_starts(
    kube, operators, fail_pod_with_kwok
):
    """Defect 5: a Foreground-deleted Job whose pod never goes (here a finalizer plays the lost node)
    kept the job Restarting forever."""
    operators.upgrade_chart("--set", "operator.terminationTimeoutSeconds=5")
    kube.create(gpu_job("stuck", kube.ns, nodes=1))
    (pod,) = _running(kube, "stuck", nodes=1)
    name = pod.metadata.name
    kube.core.patch_namespaced_pod(name, kube.ns, {"metadata": {"finalizers": ["e2e.chefgenius.io/hold"]}})
    try:
        fail_pod_with_kwok(kube.ns, name, exit_code=137, reason="OOMKilled")
        wait_for(kube.phase_is("stuck", "Restarting", "Launching", "Running"), what="the restart begun")
        st = wait_for(
            lambda: (
                (s := kube.status("stuck"))
                and any(c["type"] == "TerminationTimeout" for c in s.get("conditions", []))
                and s
            ),
            timeout=120,
            what="the TerminationTimeout condition",
        )
        assert "GangTerminationTimeout" in kube.event_reasons("stuck")
        wait_for(kube.job_of_attempt("stuck", 2), timeout=120, what="attempt 2 despite the stuck pod")
        assert any(c["reason"] == "GangTerminationTimeout" for c in st["conditions"])
    finally:
        kube.core.patch_namespaced_pod(name, kube.ns, {"metadata": {"finalizers": None}})


def test_kwok_pods_get_loopback_ips_and_rank_0s_metrics_served_there_reach_the_status(kube):
    """Issue 19: kwok's pod IPs came from 10.0.0.0/24, so every progress scrape of a Running job
    left the machine. Now they are loopback addresses (kwok --cidr), and serving rank 0's /metrics at
    the pod's own IP, as the trainer would, shows the real scrape path end to end: the chart's
    operator reads it over loopback and writes status.progress on the real API server."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server
    from recipe_api import contract
    from recipe_api.v1alpha1 import MetricsSpec

    kube.create(gpu_job("scraped", kube.ns, nodes=1))
    (pod,) = _running(kube, "scraped", nodes=1)
    assert ipaddress.ip_address(pod.status.pod_ip).is_loopback, pod.status.pod_ip
    registry = CollectorRegistry()
    Gauge(contract.STEP, "optimizer step", registry=registry).set(7)
    Gauge(contract.TOTAL_STEPS, "planned steps", registry=registry).set(100)
    server, thread = start_http_server(MetricsSpec().port, addr=pod.status.pod_ip, registry=registry)
    try:
        progress = wait_for(
            lambda: (p := kube.status("scraped").get("progress") or {}).get("step") == 7 and p,
            timeout=150,  # the chart's progress interval is 30 s
            what="rank 0's step in status.progress",
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert progress["totalSteps"] == 100 and progress["percent"] == 7.0
