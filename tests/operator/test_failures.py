"""Failure classification: every reason, and Kubeflow's ExitCode policy for exit codes."""

from __future__ import annotations

import pytest
from recipe_operator.failures import (
    FailureInfo,
    JobView,
    PodView,
    Reason,
    Retry,
    classify_exit,
    classify_pod,
    first_failure,
)

TIMEOUT = 900.0


def pod(**fields) -> PodView:
    return PodView(**{"name": "p-0", "index": 0, "attempt": 1, "phase": "Running", **fields})


# (pod fields, seconds since admission, expected (reason, retryable) or None)
CASES = {
    "healthy": ({}, 10.0, None),
    "oom killed": ({"phase": "Failed", "terminated_reason": "OOMKilled", "terminated_exit_code": 137}, 10.0, ("OOMKilled", True)),
    "evicted": ({"phase": "Failed", "status_reason": "Evicted", "status_message": "low on memory"}, 10.0, ("Evicted", True)),
    "preempted": ({"phase": "Failed", "disruption_reason": "PreemptionByScheduler"}, 10.0, ("Preempted", True)),
    "node lost (taint manager)": ({"deleting": True, "disruption_reason": "DeletionByTaintManager"}, 10.0, ("NodeLost", True)),
    "node lost (pod gc)": ({"phase": "Failed", "disruption_reason": "DeletionByPodGC"}, 10.0, ("NodeLost", True)),
    "node lost (status)": ({"status_reason": "NodeLost"}, 10.0, ("NodeLost", True)),
    "node shutdown": ({"phase": "Failed", "status_reason": "Shutdown"}, 10.0, ("NodeShutdown", True)),
    "kubelet eviction": ({"phase": "Failed", "disruption_reason": "TerminationByKubelet"}, 10.0, ("Evicted", True)),
    "exit 1": ({"phase": "Failed", "terminated_reason": "Error", "terminated_exit_code": 1}, 10.0, ("TrainerError", False)),
    "exit 127": ({"phase": "Failed", "terminated_reason": "Error", "terminated_exit_code": 127}, 10.0, ("TrainerError", False)),
    "exit 128": ({"phase": "Failed", "terminated_reason": "Error", "terminated_exit_code": 128}, 10.0, ("Signaled", True)),
    "exit 143 sigterm": ({"phase": "Failed", "terminated_reason": "Error", "terminated_exit_code": 143}, 10.0, ("Signaled", True)),
    "exit 137 unknown status": ({"phase": "Failed", "terminated_reason": "ContainerStatusUnknown", "terminated_exit_code": 137}, 10.0, ("ContainerStatusUnknown", True)),
    "exit 0 is no failure": ({"phase": "Succeeded", "terminated_reason": "Completed", "terminated_exit_code": 0}, 10.0, None),
    "image pull backoff, young": ({"phase": "Pending", "waiting_reason": "ImagePullBackOff"}, 60.0, None),
    "image pull backoff, past timeout": ({"phase": "Pending", "waiting_reason": "ImagePullBackOff"}, 901.0, ("ImagePullBackOff", False)),
    "err image pull, past timeout": ({"phase": "Pending", "waiting_reason": "ErrImagePull"}, 901.0, ("ErrImagePull", False)),
    "image pull while queued (no admission)": ({"phase": "Pending", "waiting_reason": "ErrImagePull"}, None, None),
    "invalid image name": ({"phase": "Pending", "waiting_reason": "InvalidImageName"}, 1.0, ("InvalidImageName", False)),
    "unschedulable, young": ({"phase": "Pending", "unschedulable_message": "0/3 nodes: Insufficient nvidia.com/gpu"}, 60.0, None),
    "unschedulable, past timeout": ({"phase": "Pending", "unschedulable_message": "0/3 nodes"}, 901.0, ("Unschedulable", False)),
    "failed pod without details": ({"phase": "Failed"}, 10.0, ("PodFailed", True)),
    "container creating, young": ({"phase": "Pending", "waiting_reason": "ContainerCreating"}, 60.0, None),
    "container creating past timeout (mount, CNI)": ({"phase": "Pending", "waiting_reason": "ContainerCreating"}, 901.0, ("ContainerCreating", False)),
    "create container error past timeout": ({"phase": "Pending", "waiting_reason": "CreateContainerError"}, 901.0, ("CreateContainerError", False)),
    "start error (exec not found), exit 128": ({"phase": "Failed", "terminated_reason": "StartError", "terminated_exit_code": 128}, 10.0, ("StartError", False)),
    "cannot run (docker), exit 127": ({"phase": "Failed", "terminated_reason": "ContainerCannotRun", "terminated_exit_code": 127}, 10.0, ("StartError", False)),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_classify_pod(case):
    fields, waited, expected = CASES[case]
    found = classify_pod(pod(**fields), waited, TIMEOUT)
    assert (found.reason, found.retryable) == expected if expected else found is None
    if found is not None:
        assert found.pod == "p-0" and found.message
        # the vocabulary's retry class decides: only RESTART reasons restart the gang
        assert found.retryable == (found.reason.retry is Retry.RESTART)


@pytest.mark.parametrize(
    ("reason", "code", "expected"),
    [
        ("Error", 1, ("TrainerError", False)),
        ("Error", 2, ("TrainerError", False)),
        ("OOMKilled", 1, ("OOMKilled", True)),  # a retryable reason wins over a low exit code
        ("Error", 130, ("Signaled", True)),
        ("Error", 255, ("Signaled", True)),
    ],
)
def test_exit_code_policy(reason, code, expected):
    assert classify_exit(reason, code) == expected


def test_messages_carry_the_trainers_one_line_reason():
    found = classify_pod(
        pod(phase="Failed", terminated_exit_code=2, terminated_message="spec.dataset.path: no such file"),
        1.0,
        TIMEOUT,
    )
    assert found.message == "exit code 2: spec.dataset.path: no such file" and found.exit_code == 2


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (JobView(name="j", attempt=1, failed_reason="DeadlineExceeded"), ("DeadlineExceeded", False)),
        (JobView(name="j", attempt=1, failed_reason="BackoffLimitExceeded"), ("PodFailed", True)),
        (JobView(name="j", attempt=1), None),
    ],
)
def test_job_level_failures(job, expected):
    found = first_failure(job, [], 1.0, TIMEOUT)
    assert (found.reason, found.retryable) == expected if expected else found is None


def test_a_permanent_failure_anywhere_in_the_gang_wins_over_retryable_ones():
    pods = [
        pod(name="p-0", index=0, phase="Failed", terminated_reason="OOMKilled", terminated_exit_code=137),
        pod(name="p-1", index=1, phase="Failed", terminated_reason="Error", terminated_exit_code=1),
    ]
    found = first_failure(
        JobView(name="j", attempt=1, failed_reason="BackoffLimitExceeded"), pods, 1.0, TIMEOUT
    )
    assert isinstance(found, FailureInfo) and (found.reason, found.pod) == ("TrainerError", "p-1")


def test_a_lost_node_is_blamed_on_its_own_pod_not_on_the_rank_that_lost_its_peer():
    pods = [
        pod(name="p-0", index=0, phase="Failed", terminated_reason="Error", terminated_exit_code=141),
        pod(name="p-1", index=1, phase="Failed", terminated_reason="OOMKilled", terminated_exit_code=137),
    ]
    found = first_failure(JobView(name="j", attempt=1), pods, 1.0, TIMEOUT)
    assert (found.reason, found.pod, found.retryable) == ("OOMKilled", "p-1", True)
    alone = first_failure(JobView(name="j", attempt=1), pods[:1], 1.0, TIMEOUT)
    assert (alone.reason, alone.retryable) == ("PeerLost", True)


def test_the_pods_own_reason_explains_a_failed_job():
    pods = [pod(phase="Failed", terminated_reason="OOMKilled", terminated_exit_code=137)]
    found = first_failure(
        JobView(name="j", attempt=1, failed_reason="BackoffLimitExceeded"), pods, 1.0, TIMEOUT
    )
    assert found.reason == "OOMKilled"


def test_every_reason_has_a_retry_class_and_a_message():
    """The vocabulary is the one place a reason is named: each says what it means to the user."""
    assert len({r.value for r in Reason}) == len(Reason)
    for reason in Reason:
        assert isinstance(reason.retry, Retry) and reason.message, reason
