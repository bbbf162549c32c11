"""The state machine as tables: every phase against every observation, plus the details
(conditions, counters, attempts) users see in `kubectl get/describe rtj`."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from recipe_api.contract import LABEL_ATTEMPT, TRAINER_CONTAINER_NAME
from recipe_api.status import PHASES, Condition, RecipeTrainingJobStatus
from recipe_api.validation import InvalidSpecError, parse_job
from recipe_operator import phases
from recipe_operator.failures import JobView, PodView
from recipe_operator.kube import status_patch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
EARLIER = "2026-01-01T11:00:00Z"
MANIFEST = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml", "creationTimestamp": EARLIER},
    "spec": {
        "model": {"name": "m"},
        "dataset": {"path": "/d"},
        "resources": {"nodes": 2},
        "runPolicy": {"backoffLimit": 2, "pendingTimeoutSeconds": 600},
    },
}


def status_in(phase: str, attempt: int = 1, restarts: int = 0) -> RecipeTrainingJobStatus:
    st = RecipeTrainingJobStatus(phase=phase, attempt=attempt, restarts=restarts)
    if phase != "Pending":
        st.start_time = EARLIER
        st.admission_time = EARLIER
    conditions = {"Running": "Running", "Suspended": "Suspended", "Restarting": "Restarting"}
    if phase in conditions:
        st.conditions = [Condition(type=conditions[phase], status="True", last_transition_time=EARLIER)]
    if phase in ("Succeeded", "Failed"):
        st.completion_time = EARLIER
    return st


def pod(index: int, attempt: int, **state) -> PodView:
    return PodView(
        name=f"flan-{index}-x", index=index, attempt=attempt, phase=state.pop("phase", "Running"), **state
    )


def observation(phase: str, event: str) -> phases.Observed:
    manifest = copy.deepcopy(MANIFEST)
    st = status_in(
        phase, attempt=2 if phase == "Restarting" else 1, restarts=1 if phase == "Restarting" else 0
    )
    a = st.attempt
    child: JobView | None = JobView(name="flan", attempt=a)
    pods: tuple[PodView, ...] = ()
    labels: dict[str, str] = {}
    errors: tuple = ()
    if event == "nothing":
        child = None
    elif event == "job-exists":  # just admitted: its pods are on their way
        st.admission_time = (NOW - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif event == "queued":
        child = JobView(name="flan", attempt=a, suspended=True)
    elif event == "all-running":
        pods = (pod(0, a), pod(1, a))
    elif event == "some-running":
        pods = (pod(0, a), pod(1, a, phase="Pending"))
    elif event == "complete":
        child = JobView(name="flan", attempt=a, complete=True)
        pods = (pod(0, a, phase="Succeeded", terminated_exit_code=0), pod(1, a, phase="Succeeded"))
    elif event == "oom":
        pods = (pod(0, a), pod(1, a, phase="Failed", terminated_reason="OOMKilled", terminated_exit_code=137))
    elif event == "exit-1":
        pods = (
            pod(
                0,
                a,
                phase="Failed",
                terminated_reason="Error",
                terminated_exit_code=1,
                terminated_message="bad",
            ),
        )
    elif event == "image-pull-stuck":
        pods = (pod(0, a, phase="Pending", waiting_reason="ImagePullBackOff"),)
        st.admission_time = (NOW - timedelta(seconds=601)).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif event == "suspend":
        manifest["spec"]["suspend"] = True
    elif event == "invalid":
        manifest["spec"]["training"] = {"microBatchSize": 3, "globalBatchSize": 10}
    try:
        job = parse_job(manifest)
    except InvalidSpecError as exc:
        job, errors = None, tuple(exc.errors)
    return phases.Observed(
        job=job,
        status=st,
        now=NOW,
        errors=errors,
        child=child,
        pods=pods,
        labels=labels,
        created=EARLIER,
    )


EVENTS = [
    "nothing",
    "job-exists",
    "queued",
    "some-running",
    "all-running",
    "complete",
    "oom",
    "exit-1",
    "image-pull-stuck",
    "suspend",
    "invalid",
]
# next phase for (phase, event); Suspended + anything = unsuspended (spec.suspend false).
EXPECTED = {
    "Pending": ["Launching", "Launching", "Pending", "Launching", "Running", "Succeeded", "Restarting", "Failed",
                "Failed", "Suspended", "Failed"],
    "Launching": ["Launching", "Launching", "Pending", "Launching", "Running", "Succeeded", "Restarting", "Failed",
                  "Failed", "Suspended", "Failed"],
    "Running": ["Restarting", "Running", "Pending", "Running", "Running", "Succeeded", "Restarting", "Failed",
                "Failed", "Suspended", "Failed"],
    "Restarting": ["Launching", "Launching", "Pending", "Launching", "Running", "Succeeded", "Restarting", "Failed",
                   "Failed", "Suspended", "Failed"],
    "Suspended": ["Launching", "Launching", "Launching", "Launching", "Launching", "Launching", "Launching",
                  "Launching", "Launching", "Suspended", "Failed"],
    "Succeeded": ["Succeeded"] * len(EVENTS),
    "Failed": ["Failed"] * len(EVENTS),
}  # fmt: skip
CASES = [(ph, ev, EXPECTED[ph][i]) for ph in PHASES for i, ev in enumerate(EVENTS)]


def test_the_table_covers_every_phase():
    assert set(EXPECTED) == set(PHASES)


@pytest.mark.parametrize(("phase", "event", "expected"), CASES, ids=[f"{p}-{e}" for p, e, _ in CASES])
def test_every_phase_and_event(phase, event, expected):
    observed = observation(phase, event)
    decision = phases.decide(observed)
    assert decision.status.phase == expected
    # A transition is reported exactly when the phase changed, with an event for users.
    if expected != phase:
        assert decision.transition == (phase, expected)
        assert decision.events
    else:
        assert decision.transition is None


@pytest.mark.parametrize(("phase", "event", "expected"), CASES, ids=[f"{p}-{e}" for p, e, _ in CASES])
def test_deciding_again_on_the_new_status_changes_nothing(phase, event, expected):
    """Level-triggered: after the decision is written, the same world gives no new transition
    (unless the decision's own side effect, like deleting a Job, is still pending)."""
    observed = observation(phase, event)
    first = phases.decide(observed)
    again = phases.decide(
        phases.Observed(
            **{**observed.__dict__, "status": first.status, "child": _world_after(observed, first)}
        )
    )
    assert again.status.phase == first.status.phase or first.actions
    assert again.counters == [] or first.actions


def _world_after(observed, decision):
    child = observed.child
    for action in decision.actions:
        if isinstance(action, phases.DeleteJob):
            child = None
        if isinstance(action, phases.CreateJob):
            child = JobView(name="flan", attempt=action.attempt, suspended=False)
    return child


def test_oom_restarts_the_gang_as_the_next_attempt_with_a_warning():
    d = phases.decide(observation("Running", "oom"))
    assert d.status.attempt == 2 and d.status.restarts == 1
    assert d.status.failure.reason == "OOMKilled" and d.status.failure.exit_code == 137
    assert d.actions == [phases.DeleteJob("OOMKilled")] and d.counters == ["restarted"]
    (event,) = d.events
    assert event.type == "Warning" and "attempt 2" in event.message and "restart 1 of 2" in event.message
    restarting = next(c for c in d.status.conditions if c.type == "Restarting")
    assert restarting.status == "True" and restarting.reason == "OOMKilled"


def test_retryable_failures_past_the_backoff_limit_fail_with_the_last_reason():
    observed = observation("Running", "oom")
    observed.status.restarts = 2
    d = phases.decide(observed)
    assert d.status.phase == "Failed" and d.status.failure.reason == "OOMKilled"
    assert "backoffLimit 2" in d.status.failure.message and d.counters == ["failed"]
    assert phases.DeleteJob("OOMKilled") in d.actions and d.status.completion_time


def test_a_new_attempt_is_created_once_the_old_gang_is_gone():
    observed = observation("Restarting", "nothing")
    d = phases.decide(observed)
    assert d.actions == [phases.EnsureChildren(), phases.CreateJob(2, None)]
    stale = phases.decide(phases.Observed(**{**observed.__dict__, "child": JobView(name="flan", attempt=1)}))
    assert stale.actions == [phases.DeleteJob("replaced by attempt 2")] and stale.status.phase == "Restarting"
    deleting = JobView(name="flan", attempt=1, deleting=True)
    waiting = phases.decide(phases.Observed(**{**observed.__dict__, "child": deleting}))
    assert waiting.actions == [] and waiting.status.phase == "Restarting"


def test_first_launch_counts_a_created_job_and_records_times():
    d = phases.decide(observation("Pending", "nothing"))
    assert d.counters == ["created"] and d.status.start_time and d.status.admission_time
    assert d.actions == [phases.EnsureChildren(), phases.CreateJob(1, None)]
    created = next(c for c in d.status.conditions if c.type == "Created")
    assert created.status == "True" and created.last_transition_time == "2026-01-01T12:00:00Z"


def test_time_to_running_is_measured_only_the_first_time():
    d = phases.decide(observation("Launching", "all-running"))
    assert d.seconds_to_running == 3600.0
    observed = observation("Restarting", "all-running")
    observed.status.conditions.append(Condition(type="Running", status="False", last_transition_time=EARLIER))
    assert phases.decide(observed).seconds_to_running is None


def test_a_queued_job_stays_pending_and_the_timeout_counts_from_admission():
    d = phases.decide(observation("Launching", "queued"))
    assert d.status.phase == "Pending"
    assert any(c.type == "Queued" and c.status == "True" for c in d.status.conditions)
    observed = observation("Pending", "image-pull-stuck")
    # queued for a long time, admitted just now: not past the pending timeout
    observed.status.admission_time = None
    observed.status.conditions = [Condition(type="Queued", status="True", last_transition_time=EARLIER)]
    admitted = phases.decide(observed)
    assert admitted.status.phase == "Launching" and admitted.status.admission_time == "2026-01-01T12:00:00Z"
    assert any(c.type == "Queued" and c.status == "False" for c in admitted.status.conditions)


def test_a_job_with_a_queue_label_is_created_waiting_for_admission():
    observed = observation("Pending", "nothing")
    observed = phases.Observed(**{**observed.__dict__, "labels": {"kueue.x-k8s.io/queue-name": "q"}})
    d = phases.decide(observed)
    assert d.status.phase == "Pending" and d.status.admission_time is None
    assert phases.CreateJob(1, None) in d.actions


def test_unsuspending_after_a_run_starts_a_new_attempt_without_counting_a_restart():
    d = phases.decide(observation("Suspended", "nothing"))
    assert d.status.attempt == 2 and d.status.restarts == 0
    assert phases.CreateJob(2, None) in d.actions
    suspended = next(c for c in d.status.conditions if c.type == "Suspended")
    assert suspended.status == "False" and suspended.reason == "Resumed"
    never_ran = observation("Suspended", "nothing")
    never_ran.status.start_time = None
    assert phases.decide(never_ran).status.attempt == 1


def test_suspend_deletes_the_job_only():
    d = phases.decide(observation("Running", "suspend"))
    assert d.actions == [phases.DeleteJob("Suspended")]


def test_invalid_spec_fails_once_with_the_field_path():
    d = phases.decide(observation("Pending", "invalid"))
    invalid = next(c for c in d.status.conditions if c.type == "InvalidSpec")
    assert invalid.status == "True" and "spec.training.globalBatchSize" in invalid.message
    assert d.status.failure.reason == "InvalidSpec" and d.events[0].type == "Warning"
    again = phases.decide(
        phases.Observed(**{**observation("Pending", "invalid").__dict__, "status": d.status})
    )
    assert again.events == [] and again.counters == []


def test_success_reads_the_termination_summary_of_rank_zero():
    observed = observation("Running", "complete")
    summary = '{"step": 300, "epoch": 3, "lastCheckpoint": "/checkpoints/step-00000300", "evaluation": {"perplexity": 3.2}}'
    rank0 = PodView(
        name="flan-0-x",
        index=0,
        attempt=1,
        phase="Succeeded",
        terminated_exit_code=0,
        terminated_message=summary,
    )
    d = phases.decide(phases.Observed(**{**observed.__dict__, "pods": (rank0,)}))
    assert d.status.evaluation.perplexity == 3.2 and d.status.last_checkpoint.step == 300
    assert d.status.last_checkpoint.path == "/checkpoints/step-00000300" and d.counters == ["succeeded"]


def test_a_garbled_summary_still_succeeds():
    observed = observation("Running", "complete")
    rank0 = PodView(name="p", index=0, attempt=1, phase="Succeeded", terminated_message="not json")
    d = phases.decide(phases.Observed(**{**observed.__dict__, "pods": (rank0,)}))
    assert d.status.phase == "Succeeded" and d.status.evaluation.perplexity is None


def test_ttl_deletes_the_finished_job_when_due_and_requeues_otherwise():
    observed = observation("Succeeded", "complete")
    observed.job.spec.run_policy.ttl_seconds_after_finished = 3600
    assert phases.decide(observed).actions == [phases.DeleteOwner()]
    observed.job.spec.run_policy.ttl_seconds_after_finished = 7200
    d = phases.decide(observed)
    assert d.actions == [] and d.requeue_after == 3600.0


def test_active_deadline_is_what_is_left_across_attempts():
    observed = observation("Restarting", "nothing")
    observed.job.spec.run_policy.active_deadline_seconds = 5400  # started an hour ago
    assert phases.CreateJob(2, 1800) in phases.decide(observed).actions
    observed.job.spec.run_policy.active_deadline_seconds = 3000
    d = phases.decide(observed)
    assert d.status.phase == "Failed" and d.status.failure.reason == "DeadlineExceeded"


@pytest.mark.parametrize(
    ("before", "status", "changes"),
    [
        ("True", True, False),
        ("False", True, True),
        ("True", False, True),
    ],
)
def test_conditions_move_their_transition_time_only_when_the_status_flips(before, status, changes):
    conds = [Condition(type="Running", status=before, reason="Old", last_transition_time=EARLIER)]
    (cond,) = phases.set_condition(conds, "Running", status, "New", "msg", NOW)
    assert cond.reason == "New" and cond.message == "msg"
    assert (cond.last_transition_time != EARLIER) is changes


def test_status_patch_holds_only_what_changed():
    old = status_in("Launching")
    new = old.model_copy(deep=True)
    new.phase = "Running"
    stored = old.to_manifest()
    assert status_patch(stored, new) == {"phase": "Running"}
    assert status_patch({}, RecipeTrainingJobStatus())["attempt"] == 1


def test_pods_of_other_attempts_are_ignored():
    observed = observation("Launching", "job-exists")
    old_oom = PodView(
        name="old",
        index=0,
        attempt=0,
        phase="Failed",
        terminated_reason="OOMKilled",
        terminated_exit_code=137,
    )
    d = phases.decide(phases.Observed(**{**observed.__dict__, "pods": (old_oom,)}))
    assert d.status.phase == "Launching" and d.status.restarts == 0


def test_pod_views_parse_what_a_kubelet_reports():
    view = PodView.from_dict(
        {
            "metadata": {
                "name": "flan-1-abc",
                "labels": {LABEL_ATTEMPT: "3"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
            },
            "status": {
                "phase": "Failed",
                "podIP": "10.1.2.3",
                "containerStatuses": [
                    {"name": "sidecar", "state": {"running": {}}},
                    {
                        "name": TRAINER_CONTAINER_NAME,
                        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": " x \n"}},
                    },
                ],
            },
        }
    )
    assert (view.index, view.attempt, view.pod_ip) == (1, 3, "10.1.2.3")
    assert (view.terminated_reason, view.terminated_exit_code, view.terminated_message) == (
        "OOMKilled",
        137,
        "x",
    )


def _with_pods(observed: phases.Observed, *pods: PodView) -> phases.Observed:
    return dataclasses.replace(observed, pods=pods)


def test_a_preempted_gang_restarts_without_spending_the_backoff_limit():
    """Preemption, eviction, a drain or a lost node are the cluster's doing: a job with every
    restart of backoffLimit spent still restarts, and the restart is counted apart."""
    observed = observation("Running", "all-running")
    observed.status.restarts = 2  # backoffLimit 2 spent on the job's own failures
    preempted = pod(1, 1, phase="Failed", disruption_reason="PreemptionByScheduler")
    d = phases.decide(_with_pods(observed, pod(0, 1), preempted))
    assert d.status.phase == "Restarting" and d.status.attempt == 2
    assert d.status.restarts == 3 and d.status.disruptions == 1
    assert "not counted against backoffLimit" in d.events[0].message
    # the job's own failure after that still finds its limit spent
    again = observation("Running", "oom")
    again.status.restarts, again.status.disruptions = 3, 1
    assert phases.decide(again).status.phase == "Failed"


def test_an_attempt_unschedulable_after_a_preemption_waits_for_capacity_instead_of_failing():
    observed = observation("Launching", "job-exists")
    observed.status.admission_time = (NOW - timedelta(seconds=601)).strftime("%Y-%m-%dT%H:%M:%SZ")
    observed.status.failure.reason = "Preempted"
    stuck = pod(0, 1, phase="Pending", unschedulable_message="0/3 nodes are available: Insufficient cpu")
    d = phases.decide(_with_pods(observed, stuck))
    assert d.status.phase == "Launching" and not d.status.failure.message
    observed.status.failure.reason = "OOMKilled"  # after the job's own failure the timeout holds
    assert phases.decide(_with_pods(observed, stuck)).status.phase == "Failed"
