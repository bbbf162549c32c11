"""Tables for what a real API server showed and kmock hides (issue 10): status patches that
converge, objects the job does not own, create failures in status, and an old gang that will
not terminate."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from recipe_api.status import RecipeTrainingJobStatus
from recipe_operator import phases
from recipe_operator.failures import CreateFailure, JobView, PodView, classify_create_failure
from recipe_operator.kube import _without_nulls, status_patch
from test_phases import NOW, observation, pod, status_in


def apply_merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386 as the API server applies it, then the pruning of nulls it does for CRDs."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = _without_nulls(value)
    return result


@pytest.mark.parametrize("phase", ["Pending", "Launching", "Running", "Restarting", "Suspended", "Failed"])
def test_a_written_status_needs_no_second_write(phase):
    """The stored status is the patch applied by the API server; deciding again writes nothing."""
    stored: dict = {}
    new = status_in(phase)
    new.progress.loss = None  # nulls inside objects are what never converged
    first = status_patch(stored, new)
    stored = apply_merge_patch(stored, first)
    assert status_patch(stored, new) == {}


def test_a_changed_progress_field_sends_only_that_field_and_never_a_null():
    before = status_in("Running")
    before.progress.step, before.progress.loss = 10, 2.0
    stored = apply_merge_patch({}, status_patch({}, before))
    after = before.model_copy(deep=True)
    after.progress.step = 11
    assert status_patch(stored, after) == {"progress": {"step": 11}}
    after.progress.loss = None  # removing a stored value is the one null worth sending
    assert status_patch(stored, after) == {"progress": {"step": 11, "loss": None}}


def test_an_empty_status_gets_no_nulls():
    patch = status_patch({}, RecipeTrainingJobStatus())
    assert None not in patch.values() and patch["attempt"] == 1
    assert all(v is not None for v in patch["progress"].values())


def test_a_same_named_object_the_job_does_not_own_fails_it_without_deleting_anything():
    observed = observation("Launching", "job-exists")
    observed = phases.Observed(
        **{**observed.__dict__, "conflict": "Job ml/flan exists and is not owned by it"}
    )
    d = phases.decide(observed)
    assert d.status.phase == "Failed" and d.status.failure.reason == "ConflictingObject"
    assert "Job ml/flan" in d.status.failure.message
    assert not [a for a in d.actions if isinstance(a, phases.DeleteJob)]
    assert any(c.type == "Conflict" and c.status == "True" for c in d.status.conditions)


@pytest.mark.parametrize(
    ("message", "reason", "permanent"),
    [
        (
            'pods "flan-0-x" is forbidden: exceeded quota: gpu, requested: nvidia.com/gpu=8',
            "QuotaExceeded",
            False,
        ),
        ("pods is forbidden: no PriorityClass with name urgent was found", "PriorityClassNotFound", True),
        (
            'pods "flan-0" is forbidden: violates PodSecurity "restricted:latest": ...',
            "PodSecurityViolation",
            True,
        ),
        ("the server could not find the requested resource", "FailedCreate", False),
    ],
)
def test_failed_create_messages_are_classified(message, reason, permanent):
    failure = classify_create_failure(message)
    assert (failure.reason, failure.permanent, failure.message) == (reason, permanent, message)


def test_a_4xx_from_the_operators_own_create_is_permanent():
    assert classify_create_failure('Service "1a" is invalid', 422).permanent
    assert not classify_create_failure("etcdserver: request timed out", 500).permanent


def _launching_with(failure: CreateFailure, waited: float) -> phases.Decision:
    observed = observation("Launching", "job-exists")
    st = observed.status.model_copy(deep=True)
    st.admission_time = (NOW - timedelta(seconds=waited)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return phases.decide(phases.Observed(**{**observed.__dict__, "status": st, "create_failure": failure}))


def test_a_missing_priority_class_fails_the_job_with_the_api_message():
    failure = classify_create_failure("no PriorityClass with name urgent was found")
    d = _launching_with(failure, waited=5)
    assert d.status.phase == "Failed" and d.status.failure.reason == "PriorityClassNotFound"
    assert "no PriorityClass with name urgent" in d.status.failure.message
    assert any(c.type == "Failed" and "urgent" in c.message for c in d.status.conditions)


def test_an_exhausted_quota_waits_with_a_condition_then_fails_at_the_pending_timeout():
    failure = classify_create_failure("exceeded quota: gpu")
    waiting = _launching_with(failure, waited=5)
    assert waiting.status.phase == "Launching"
    (cond,) = [c for c in waiting.status.conditions if c.type == "CreateFailed"]
    assert cond.status == "True" and cond.reason == "QuotaExceeded" and "exceeded quota" in cond.message
    assert waiting.requeue_after == phases.LAUNCH_RECHECK_SECONDS  # refusals are only events: look again
    timed_out = _launching_with(failure, waited=601)
    assert timed_out.status.phase == "Failed" and timed_out.status.failure.reason == "QuotaExceeded"


def test_a_refused_child_create_ends_launching_in_failed():
    observed = observation("Launching", "nothing")
    d = phases.fail_launch(observed, CreateFailure("FailedCreate", 'Service "x" is invalid', True))
    assert d.status.phase == "Failed" and d.status.failure.message == 'Service "x" is invalid'


def _restarting_with_old_job_terminating_for(seconds: float) -> phases.Decision:
    observed = observation("Restarting", "nothing")
    since = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = JobView(name="flan", attempt=1, deleting=True, deletion_timestamp=since)
    stuck = (pod(0, 1), pod(1, 1))
    return phases.decide(phases.Observed(**{**observed.__dict__, "child": old, "pods": stuck}))


def test_an_old_gang_terminating_within_the_timeout_is_waited_for():
    d = _restarting_with_old_job_terminating_for(60)
    assert d.actions == [] and d.status.phase == "Restarting"
    assert d.requeue_after == pytest.approx(240)


def test_an_old_gang_stuck_terminating_has_its_pods_force_deleted_with_a_reason():
    d = _restarting_with_old_job_terminating_for(301)
    assert d.actions == [phases.ForceDeletePods(1)]
    (cond,) = [c for c in d.status.conditions if c.type == "TerminationTimeout"]
    assert cond.reason == "GangTerminationTimeout" and "flan-0-x" in cond.message
    assert [e.reason for e in d.events] == ["GangTerminationTimeout"]


def test_a_gang_still_stuck_after_twice_the_timeout_is_orphaned():
    d = _restarting_with_old_job_terminating_for(601)
    assert d.actions == [phases.OrphanJob()]
    assert any("orphaning" in c.message for c in d.status.conditions)


def test_job_views_carry_uid_deletion_time_and_active_pods():
    view = JobView.from_dict(
        {
            "metadata": {"name": "flan", "uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"active": 2},
        }
    )
    assert (view.uid, view.deletion_timestamp, view.deleting, view.active) == (
        "u1",
        "2026-01-01T00:00:00Z",
        True,
        2,
    )
    assert PodView.from_dict({"metadata": {"name": "p"}}).deleting is False


def test_an_attempt_without_any_pod_past_the_pending_timeout_fails_instead_of_launching_forever():
    observed = observation("Launching", "job-exists")
    st = observed.status.model_copy(deep=True)
    st.admission_time = (NOW - timedelta(seconds=601)).strftime("%Y-%m-%dT%H:%M:%SZ")
    d = phases.decide(phases.Observed(**{**observed.__dict__, "status": st, "pods": ()}))
    assert d.status.phase == "Failed" and d.status.failure.reason == "PodsNotCreated"
    assert "kubectl describe job flan" in d.status.failure.message
    within = phases.decide(phases.Observed(**{**observed.__dict__, "pods": ()}))
    assert within.status.phase == "Launching"
