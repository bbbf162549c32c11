"""The real operator (kopf.testing.KopfRunner) against the kmock API emulator.

kmock has no Job controller or kubelet, so each test plays them: it creates the attempt's
pods with the labels the Job controller would copy from the template and sets their status
the way a kubelet reports it. Waiting uses generous polling bounds that only stop a broken
run; no test asserts on how long anything took.
"""

from __future__ import annotations

import copy
import http.server
import json
from typing import Any

import pytest
from kmock_cluster import Cluster, wait_for
from kopf.testing import KopfRunner
from local_http import serving
from recipe_api.contract import LABEL_ATTEMPT, LABEL_JOB_NAME, TRAINER_CONTAINER_NAME

NS = "ml"
ARGS = ["run", "-A", "--standalone", "--verbose", "-m", "recipe_operator.handlers"]
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def rtj(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "training.chefgenius.io/v1alpha1",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {"name": "google/flan-t5-small"},
            "dataset": {"path": "/data/recipes.csv", "volume": {"claimName": "recipes"}},
            "resources": {"nodes": 2, "gpusPerNode": 1, "cpu": "2", "memory": "8Gi"},
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    return (cluster.get("RecipeTrainingJob", NS, name) or {}).get("status") or {}


def phase_is(cluster: Cluster, name: str, phase: str):
    return lambda: status(cluster, name).get("phase") == phase and status(cluster, name)


def job_of_attempt(cluster: Cluster, name: str, attempt: int):
    def check():
        job = cluster.get("Job", NS, name)
        return job if job and job["metadata"]["labels"].get(LABEL_ATTEMPT) == str(attempt) else None

    return check


def start_pods(
    cluster: Cluster,
    name: str,
    attempt: int,
    nodes: int = 2,
    pod_ip: str = "127.88.0.1",  # loopback, as the local cluster's kwok pods: a scrape stays on this machine
    state: dict | None = None,
    node: str | None = None,
) -> list[str]:
    """What the Job controller and the kubelet do: pods from the template, then Running
    (or Pending in the given container `state`)."""
    job = wait_for(job_of_attempt(cluster, name, attempt), what=f"Job of attempt {attempt}")
    template_labels = job["spec"]["template"]["metadata"]["labels"]
    names = []
    for index in range(nodes):
        pod_name = f"{name}-{index}-a{attempt}"
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": NS,
                    "labels": {**template_labels, COMPLETION_INDEX: str(index)},
                    "annotations": {COMPLETION_INDEX: str(index)},
                },
                "spec": {**job["spec"]["template"]["spec"], **({"nodeName": node} if node else {})},
                "status": {
                    "phase": "Running" if state is None else "Pending",
                    "podIP": pod_ip,
                    "containerStatuses": [
                        {"name": TRAINER_CONTAINER_NAME, "state": state or {"running": {}}}
                    ],
                },
            }
        )
        names.append(pod_name)
    return names


def terminate(cluster: Cluster, pod: str, exit_code: int, reason: str, message: str = "") -> None:
    terminated = {"exitCode": exit_code, "reason": reason, "message": message}
    cluster.patch(
        "Pod",
        NS,
        pod,
        {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [{"name": TRAINER_CONTAINER_NAME, "state": {"terminated": terminated}}],
            }
        },
        status=True,
    )


def event_reasons(cluster: Cluster, name: str) -> list[str]:
    return [e.get("reason") for e in cluster.events(NS, name)]


@pytest.fixture()
def operator(cluster):
    with KopfRunner(ARGS, timeout=30) as runner:
        yield cluster
    assert runner.exit_code == 0, runner.output[-2000:]


def test_a_job_gets_its_configmap_service_and_indexed_job_owned_by_it_and_a_kept_pvc(operator):
    created = operator.create(rtj("owned"))
    job = wait_for(lambda: operator.get("Job", NS, "owned"), what="the Job")
    pvc = operator.get("PersistentVolumeClaim", NS, "owned-checkpoints")
    # no owner: deleting the job keeps its checkpoints for a re-created namesake to resume from
    assert "ownerReferences" not in pvc["metadata"] and pvc["metadata"]["labels"][LABEL_JOB_NAME] == "owned"
    children = [
        operator.get("ConfigMap", NS, "owned-config"),
        operator.get("Service", NS, "owned"),
        job,
    ]
    for child in children:
        assert child is not None
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == created["metadata"]["uid"] and ref["controller"] is True
        assert child["metadata"]["labels"][LABEL_JOB_NAME] == "owned"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["metadata"]["labels"][LABEL_ATTEMPT] == "1"
    st = wait_for(phase_is(operator, "owned", "Launching"), what="Launching")
    assert st["attempt"] == 1 and st["restarts"] == 0
    assert any(c["type"] == "Created" and c["status"] == "True" for c in st["conditions"])
    wait_for(lambda: "Launching" in event_reasons(operator, "owned"), what="a Launching event")


def test_phases_follow_the_pods_from_launching_to_running_to_succeeded(operator):
    operator.create(rtj("happy"))
    pods = start_pods(operator, "happy", attempt=1)
    wait_for(phase_is(operator, "happy", "Running"), what="Running")
    summary = {
        "step": 120,
        "epoch": 2.0,
        "lastCheckpoint": "/checkpoints/step-00000120",
        "bestCheckpoint": "/checkpoints/step-00000100",
        "evaluation": {"validationLoss": 1.5, "perplexity": 4.48, "quality": 0.8},
    }
    terminate(operator, pods[1], 0, "Completed")
    terminate(operator, pods[0], 0, "Completed", json.dumps(summary))
    operator.patch(
        "Job", NS, "happy", {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, status=True
    )
    st = wait_for(phase_is(operator, "happy", "Succeeded"), what="Succeeded")
    assert st["evaluation"]["validationLoss"] == 1.5
    assert st["evaluation"]["bestCheckpoint"] == "/checkpoints/step-00000100"
    assert st["lastCheckpoint"]["step"] == 120
    assert st["completionTime"]
    reasons = wait_for(lambda: "Succeeded" in (r := event_reasons(operator, "happy")) and r, what="events")
    assert {"Launching", "Running", "Succeeded"} <= set(reasons)


def test_an_oom_killed_pod_restarts_the_whole_gang_as_attempt_two(operator):
    operator.create(rtj("oom"))
    pods = start_pods(operator, "oom", attempt=1)
    wait_for(phase_is(operator, "oom", "Running"), what="Running")
    terminate(operator, pods[1], 137, "OOMKilled")
    wait_for(job_of_attempt(operator, "oom", 2), what="the Job of attempt 2")
    st = status(operator, "oom")
    assert st["attempt"] == 2 and st["restarts"] == 1
    assert st["failure"]["reason"] == "OOMKilled" and st["failure"]["pod"] == pods[1]
    events = wait_for(
        lambda: [e for e in operator.events(NS, "oom") if e.get("reason") == "Restarting"],
        what="Restarting event",
    )
    assert events[0]["type"] == "Warning" and "OOMKilled" in events[0]["message"]
    # The kept checkpoint volume is the same claim: attempt 2 resumes from it.
    assert operator.get("PersistentVolumeClaim", NS, "oom-checkpoints") is not None


def test_retryable_failures_past_backoff_limit_fail_with_the_last_reason(operator):
    operator.create(rtj("flaky", runPolicy={"backoffLimit": 1}))
    pods = start_pods(operator, "flaky", attempt=1)
    terminate(operator, pods[0], 137, "OOMKilled")
    pods = start_pods(operator, "flaky", attempt=2)
    terminate(operator, pods[0], 143, "Error", "received SIGTERM")
    st = wait_for(phase_is(operator, "flaky", "Failed"), what="Failed")
    assert st["failure"]["reason"] == "Signaled" and st["failure"]["exitCode"] == 143
    assert st["restarts"] == 1
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and "backoffLimit" in failed["message"]
    wait_for(lambda: operator.get("Job", NS, "flaky") is None, what="the failed gang removed")


def test_a_trainer_error_exit_code_fails_without_restarting(operator):
    operator.create(rtj("broken"))
    pods = start_pods(operator, "broken", attempt=1)
    terminate(operator, pods[0], 1, "Error", "dataset.path /data/recipes.csv does not exist")
    st = wait_for(phase_is(operator, "broken", "Failed"), what="Failed")
    assert st["restarts"] == 0 and st["failure"]["reason"] == "TrainerError"
    assert "does not exist" in st["failure"]["message"]


def test_suspend_removes_the_job_but_keeps_checkpoints_and_unsuspend_starts_a_new_attempt(operator):
    operator.create(rtj("pausable"))
    start_pods(operator, "pausable", attempt=1)
    wait_for(phase_is(operator, "pausable", "Running"), what="Running")
    operator.patch("RecipeTrainingJob", NS, "pausable", {"spec": {"suspend": True}})
    wait_for(phase_is(operator, "pausable", "Suspended"), what="Suspended")
    wait_for(lambda: operator.get("Job", NS, "pausable") is None, what="the Job deleted")
    assert operator.get("PersistentVolumeClaim", NS, "pausable-checkpoints") is not None
    assert operator.get("ConfigMap", NS, "pausable-config") is not None
    operator.patch("RecipeTrainingJob", NS, "pausable", {"spec": {"suspend": False}})
    wait_for(job_of_attempt(operator, "pausable", 2), what="attempt 2 after unsuspend")
    st = wait_for(phase_is(operator, "pausable", "Launching"), what="Launching")
    suspended = next(c for c in st["conditions"] if c["type"] == "Suspended")
    assert suspended["status"] == "False" and st["restarts"] == 0


def test_an_invalid_spec_fails_with_the_field_path_and_creates_nothing(operator):
    operator.create(rtj("invalid", training={"microBatchSize": 3, "globalBatchSize": 10}))
    st = wait_for(phase_is(operator, "invalid", "Failed"), what="Failed")
    invalid = next(c for c in st["conditions"] if c["type"] == "InvalidSpec")
    assert invalid["status"] == "True" and "spec.training.globalBatchSize" in invalid["message"]
    events = wait_for(
        lambda: [e for e in operator.events(NS, "invalid") if e.get("reason") == "InvalidSpec"], what="event"
    )
    assert events[0]["type"] == "Warning"
    assert operator.list("Job", NS) == [] and operator.list("ConfigMap", NS) == []


def test_a_kueue_queued_job_waits_pending_until_admitted(operator):
    body = rtj("queued")
    body["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team-a"}
    operator.create(body)
    job = wait_for(lambda: operator.get("Job", NS, "queued"), what="the suspended Job")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    st = wait_for(phase_is(operator, "queued", "Pending"), what="Pending")
    assert any(c["type"] == "Queued" and c["status"] == "True" for c in st["conditions"])
    assert st.get("admissionTime") is None
    operator.patch("Job", NS, "queued", {"spec": {"suspend": False}})  # what Kueue does on admission
    st = wait_for(phase_is(operator, "queued", "Launching"), what="Launching after admission")
    assert st["admissionTime"]
    assert any(c["type"] == "Queued" and c["status"] == "False" for c in st["conditions"])


def test_ttl_after_finished_deletes_the_job(operator):
    operator.create(rtj("short-lived", runPolicy={"ttlSecondsAfterFinished": 0}))
    pods = start_pods(operator, "short-lived", attempt=1)
    for pod in pods:
        terminate(operator, pod, 0, "Completed")
    operator.patch(
        "Job",
        NS,
        "short-lived",
        {"status": {"conditions": [{"type": "Complete", "status": "True"}]}},
        status=True,
    )
    assert wait_for(
        lambda: operator.get("RecipeTrainingJob", NS, "short-lived") is None, what="the job deleted by TTL"
    )


def test_an_operator_restarted_mid_launch_creates_no_duplicates(cluster):
    """The first operator died after creating the ConfigMap and Service (status already says
    Launching); the next one must finish the launch without a second anything."""
    from recipe_api.validation import parse_job
    from recipe_operator import builders

    created = cluster.create(rtj("resumed"))
    uid = created["metadata"]["uid"]
    job = parse_job({k: v for k, v in created.items() if k != "status"})
    cluster.create(builders.build_config_map(job, uid))
    cluster.create(builders.build_service(job, uid))
    cluster.patch(
        "RecipeTrainingJob", NS, "resumed", {"status": {"phase": "Launching", "attempt": 1}}, status=True
    )
    for _ in range(2):  # a second restart must change nothing either
        with KopfRunner(ARGS, timeout=30) as runner:
            wait_for(lambda: cluster.get("Job", NS, "resumed"), what="the Job")
            wait_for(lambda: status(cluster, "resumed").get("startTime"), what="status written")
        assert runner.exit_code == 0
    for kind in ("ConfigMap", "Service", "PersistentVolumeClaim", "Job"):
        assert len(cluster.list(kind, NS)) == 1, kind
    st = status(cluster, "resumed")
    assert st["phase"] == "Launching" and st["attempt"] == 1 and st["restarts"] == 0


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = (
        "# TYPE recipe_trainer_step gauge\nrecipe_trainer_step 50\n"
        "# TYPE recipe_trainer_total_steps gauge\nrecipe_trainer_total_steps 200\n"
        "# TYPE recipe_trainer_loss gauge\nrecipe_trainer_loss 1.25\n"
        "# TYPE recipe_trainer_eta_seconds gauge\nrecipe_trainer_eta_seconds 4830\n"
        "# TYPE recipe_trainer_last_checkpoint_step gauge\nrecipe_trainer_last_checkpoint_step 40\n"
    )

    def do_GET(self):  # noqa: N802 (http.server's name)
        data = self.body.encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def rank0_metrics():
    with serving(_Metrics) as port:
        yield port


def test_progress_is_mirrored_from_rank_zero_metrics(operator, rank0_metrics):
    operator.create(rtj("watched", metrics={"port": rank0_metrics}))
    start_pods(operator, "watched", attempt=1, pod_ip="127.0.0.1")
    wait_for(phase_is(operator, "watched", "Running"), what="Running")
    st = wait_for(
        lambda: (
            status(operator, "watched").get("progress", {}).get("step") == 50 and status(operator, "watched")
        )
    )
    assert st["progress"] == {
        **st["progress"],
        "totalSteps": 200,
        "percent": 25.0,
        "loss": 1.25,
        "eta": "1h20m",
    }
    assert st["lastCheckpoint"]["step"] == 40 and st["lastCheckpoint"]["path"] == "/checkpoints/step-00000040"


def test_an_image_pull_stuck_past_the_pending_timeout_fails_the_job(operator):
    # status.startTime has whole seconds: a 1 s timeout could expire before the test's pods exist
    # (seen once: the Job was created at hh:mm:21.985 and failed at :22.006). 3 s leaves 2 s at least.
    operator.create(rtj("nopull", runPolicy={"pendingTimeoutSeconds": 3}))
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "trainer:none"'}}
    start_pods(operator, "nopull", attempt=1, state=waiting)
    # Nothing else happens in the cluster: the operator's own clock must notice the timeout.
    st = wait_for(phase_is(operator, "nopull", "Failed"), what="Failed after the pending timeout")
    assert st["failure"]["reason"] == "ImagePullBackOff" and st["restarts"] == 0
    assert "Back-off pulling image" in st["failure"]["message"]


def test_spec_edits_apply_at_the_next_attempt(operator):
    operator.create(rtj("edited", training={"epochs": 5}))
    pods = start_pods(operator, "edited", attempt=1)
    wait_for(phase_is(operator, "edited", "Running"), what="Running")
    operator.patch("RecipeTrainingJob", NS, "edited", {"spec": {"training": {"epochs": 2}}})
    terminate(operator, pods[0], 137, "OOMKilled")
    wait_for(job_of_attempt(operator, "edited", 2), what="attempt 2")
    config = operator.get("ConfigMap", NS, "edited-config")["data"]["trainer-config.yaml"]
    assert "epochs: 2" in config and "epochs: 5" not in config


def test_a_deleted_job_re_created_under_its_name_adopts_its_kept_checkpoint_claim(operator):
    """The documented recovery: delete a failed job, create it again, it resumes from its checkpoints.
    The claim has no owner, so the garbage collector leaves it; the new job adopts it."""
    operator.create(rtj("again"))
    wait_for(lambda: operator.get("Job", NS, "again"), what="the first Job")
    # a mark on the first claim: kmock gives claims no uid to compare
    operator.patch(
        "PersistentVolumeClaim", NS, "again-checkpoints", {"metadata": {"labels": {"first": "yes"}}}
    )
    operator.delete("RecipeTrainingJob", NS, "again")
    collected = operator.collect_garbage(NS)
    assert {"Job/again", "ConfigMap/again-config", "Service/again"} <= set(collected)
    assert not [c for c in collected if c.startswith("PersistentVolumeClaim/")]
    recreated = operator.create(rtj("again"))

    def the_new_jobs_job():
        # The collector keeps running: a reconcile that read the first job just before its
        # deletion can still create children owned by it (seen in CI), which block the new job
        # until they are collected.
        operator.collect_garbage(NS)
        j = operator.get("Job", NS, "again")
        return j and j["metadata"]["ownerReferences"][0]["uid"] == recreated["metadata"]["uid"] and j

    job = wait_for(the_new_jobs_job, what="the re-created job's Job")
    claim = operator.get("PersistentVolumeClaim", NS, "again-checkpoints")
    assert claim["metadata"]["labels"]["first"] == "yes"  # the same claim, adopted
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == "again-checkpoints"
    assert (operator.get("RecipeTrainingJob", NS, "again").get("status") or {}).get("phase") != "Failed"


def test_a_gang_grown_past_its_read_write_once_volume_fails_with_the_reason_and_keeps_it(operator):
    operator.create(rtj("grown", resources={"nodes": 1, "gpusPerNode": 1, "cpu": "2", "memory": "8Gi"}))
    pods = start_pods(operator, "grown", attempt=1, nodes=1)
    wait_for(phase_is(operator, "grown", "Running"), what="Running")
    assert operator.get("PersistentVolumeClaim", NS, "grown-checkpoints")["spec"]["accessModes"] == [
        "ReadWriteOnce"
    ]
    operator.patch("RecipeTrainingJob", NS, "grown", {"spec": {"resources": {"nodes": 2}}})
    terminate(operator, pods[0], 137, "OOMKilled")  # the next attempt runs the edited spec
    st = wait_for(phase_is(operator, "grown", "Failed"), what="Failed")
    assert st["failure"]["reason"] == "VolumeAccessMode"
    assert "grown-checkpoints is ReadWriteOnce" in st["failure"]["message"]
    assert "spec.checkpoint.volume.claimName" in st["failure"]["message"]
    assert operator.get("PersistentVolumeClaim", NS, "grown-checkpoints") is not None  # checkpoints kept
    assert not job_of_attempt(operator, "grown", 2)()  # no gang that would wait out Multi-Attach


def test_a_gpu_fault_restarts_the_gang_off_the_faulty_node(operator):
    operator.create(rtj("xid"))
    pods = start_pods(operator, "xid", attempt=1, node="gpu-node-7")
    wait_for(phase_is(operator, "xid", "Running"), what="Running")
    terminate(operator, pods[1], 1, "Error", "RuntimeError: CUDA error: uncorrectable ECC error encountered")
    job = wait_for(job_of_attempt(operator, "xid", 2), what="the Job of attempt 2")
    affinity = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "NotIn", "values": ["gpu-node-7"]}]
    st = status(operator, "xid")
    assert st["failure"]["reason"] == "GPUFault" and st["avoidedNodes"] == ["gpu-node-7"]
    events = wait_for(
        lambda: [e for e in operator.events(NS, "xid") if e.get("reason") == "GPUFault"],
        what="GPUFault event",
    )
    assert "node gpu-node-7" in events[0]["message"]
