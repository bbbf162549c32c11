"""Failure classification from whole pod objects as the API server returns them
(tests/data/pods/, README there says which were captured from a real cluster and which are
hand-written from Kubernetes' sources): `PodView.from_dict` must find the DisruptionTarget
condition, status.reason, the Unschedulable PodScheduled condition and the container states,
or a lost node would classify as nothing and the gang would wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipe_operator.failures import PodView, Reason, classify_pod

PODS = Path(__file__).resolve().parents[1] / "data" / "pods"
TIMEOUT = 600.0

# file -> (reason, retryable); "waits" cases fail only once past the pending timeout
EXPECTED = {
    "oom-killed": (Reason.OOM_KILLED, True),
    "evicted-node-pressure": (Reason.EVICTED, True),
    "evicted-eviction-api": (Reason.EVICTED, True),
    "preempted": (Reason.PREEMPTED, True),
    "node-lost-taint-manager": (Reason.NODE_LOST, True),
    "node-shutdown": (Reason.NODE_SHUTDOWN, True),
    "node-shutdown-before-1.21": (Reason.NODE_SHUTDOWN, True),
    "unschedulable": (Reason.UNSCHEDULABLE, False),
    "image-pull-back-off": (Reason.IMAGE_PULL_BACK_OFF, False),
    "err-image-pull": (Reason.ERR_IMAGE_PULL, False),
}
WAITS = {"unschedulable", "image-pull-back-off", "err-image-pull"}


def load(name: str) -> PodView:
    return PodView.from_dict(json.loads((PODS / f"{name}.json").read_text()))


def test_every_file_has_an_expectation_and_a_provenance_row():
    files = {p.stem for p in PODS.glob("*.json")}
    assert files == set(EXPECTED)
    readme = (PODS / "README.md").read_text()
    assert all(f"| {name}.json |" in readme for name in files)


@pytest.mark.parametrize("name", EXPECTED)
def test_a_real_pod_object_classifies_as_its_failure(name):
    pod = load(name)
    assert (pod.index, pod.attempt) == (1, 2), "completion index and attempt read from the pod"
    waited = TIMEOUT + 1 if name in WAITS else 5.0
    failure = classify_pod(pod, waited, TIMEOUT)
    assert failure is not None, name
    assert (failure.reason, failure.retryable) == EXPECTED[name]
    assert failure.pod == pod.name


@pytest.mark.parametrize("name", sorted(WAITS))
def test_a_waiting_pod_is_no_failure_before_the_pending_timeout(name):
    assert classify_pod(load(name), TIMEOUT - 1, TIMEOUT) is None


def test_the_parsed_fields_are_the_api_servers():
    """The fields classification reads, checked once against the files themselves."""
    assert load("preempted").disruption_reason == "PreemptionByScheduler" and load("preempted").deleting
    assert load("node-shutdown").status_reason == "Terminated"
    assert "1 Insufficient cpu" in load("unschedulable").unschedulable_message
    assert load("image-pull-back-off").waiting_reason == "ImagePullBackOff"
    oom = load("oom-killed")
    assert (oom.terminated_reason, oom.terminated_exit_code) == ("OOMKilled", 137)
