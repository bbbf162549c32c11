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
# How the operator reaches each phase from a new job (an empty status), one decide() per step:
# (the phase the step starts in, what it sees). Every fixture status is one the operator wrote.
PATHS = {
    "Pending": [("Pending", "nothing"), ("Launching", "queued")],  # a queue suspended the Job
    "Launching": [("Pending", "nothing")],
    "Running": [("Pending", "nothing"), ("Launching", "all-running")],
    "Restarting": [("Pending", "nothing"), ("Launching", "all-running"), ("Running", "oom")],
    "Suspended": [("Pending", "nothing"), ("Launching", "all-running"), ("Running", "suspend")],
    "Succeeded": [("Pending", "nothing"), ("Launching", "all-running"), ("Running", "complete")],
    "Failed": [("Pending", "nothing"), ("Launching", "all-running"), ("Running", "exit-1")],
}


def status_in(phase: str, at: datetime = NOW - timedelta(hours=1)) -> RecipeTrainingJobStatus:
    """The status the operator wrote on reaching `phase`, every step decided at time `at`."""
    st = RecipeTrainingJobStatus()
    for step_phase, event in PATHS[phase]:
        assert st.phase == step_phase, (phase, step_phase, st.phase)
        st = phases.decide(_observed(st, event, at)).status
    assert st.phase == phase
    return st


def pod(index: int, attempt: int, **state) -> PodView:
    return PodView(
        name=f"flan-{index}-x", index=index, attempt=attempt, phase=state.pop("phase", "Running"), **state
    )


def _world(event: str, attempt: int) -> tuple[JobView | None, tuple[PodView, ...]]:
    """The attempt's Job and pods as the cluster shows them for `event`."""
    a = attempt
    job = JobView(name="flan", attempt=a)
    return {
        "nothing": (None, ()),
        "job-exists": (job, ()),  # just admitted: its pods are on their way
        "queued": (JobView(name="flan", attempt=a, suspended=True), ()),
        "all-running": (job, (pod(0, a), pod(1, a))),
        "some-running": (job, (pod(0, a), pod(1, a, phase="Pending"))),
        "complete": (
            JobView(name="flan", attempt=a, complete=True),
            (pod(0, a, phase="Succeeded", terminated_exit_code=0), pod(1, a, phase="Succeeded")),
        ),
        "oom": (job, (pod(0, a), pod(1, a, phase="Failed", terminated_reason="OOMKilled", terminated_exit_code=137))),
        "exit-1": (
            job,
            (pod(0, a, phase="Failed", terminated_reason="Error", terminated_exit_code=1, terminated_message="bad"),),
        ),
        "image-pull-stuck": (job, (pod(0, a, phase="Pending", waiting_reason="ImagePullBackOff"),)),
        "suspend": (job, (pod(0, a), pod(1, a))),
        "invalid": (job, (pod(0, a), pod(1, a))),
    }[event]  # fmt: skip


def _observed(st: RecipeTrainingJobStatus, event: str, now: datetime) -> phases.Observed:
    manifest = copy.deepcopy(MANIFEST)
    if event == "suspend":
        manifest["spec"]["suspend"] = True
    elif event == "invalid":
        manifest["spec"]["training"] = {"microBatchSize": 3, "globalBatchSize": 10}
    errors: tuple = ()
    try:
        job = parse_job(manifest)
    except InvalidSpecError as exc:
        job, errors = None, tuple(exc.errors)
    child, pods = _world(event, st.attempt)
    return phases.Observed(
        job=job, status=st, now=now, errors=errors, child=child, pods=pods, labels={}, created=EARLIER
    )


def new_job(event: str = "nothing") -> phases.Observed:
    """A job the operator has not written a status for yet."""
    return _observed(RecipeTrainingJobStatus(), event, NOW)


# When the job entered its phase, per event: pods "on their way" were admitted 5 s ago, a stuck
# image pull has waited past the 600 s pending timeout; everything else happened an hour ago.
ENTERED = {"job-exists": timedelta(seconds=5), "image-pull-stuck": timedelta(seconds=601)}


def observation(phase: str, event: str) -> phases.Observed:
    """The operator's own status for `phase` meeting the cluster state `event`, decided at NOW."""
    st = status_in(phase, at=NOW - ENTERED.get(event, timedelta(hours=1)))
    return _observed(st, event, NOW)


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
# Pending is a queued job: its un-suspended Job is its admission, so a stuck image pull seen then
# has waited 0 s of the pending timeout (Launching), however long the job was queued.
EXPECTED = {
    "Pending": ["Launching", "Launching", "Pending", "Launching", "Running", "Succeeded", "Restarting", "Failed",
                "Launching", "Suspended", "Failed"],
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


# The idempotence property, exactly. Let the first decision be carried out: its status written,
# each DeleteJob a Foreground deletion under way (the Job stays, marked deleting, its pods too),
# each CreateJob the new attempt's Job without pods yet. Deciding on that world returns the same
# status with no transition, event, counter or action. One step may follow instead, listed here
# with why; each ends at a decision that changes nothing, and no counter is ever repeated.
SECOND_STEPS = {
    # The attempt's Job vanished while Running (someone deleted it): the restart is decided and
    # written first (status before side effects, so a crash cannot count it twice); there is no
    # old gang to wait for, so the next decision launches the new attempt.
    ("Running", "nothing"): ("Restarting", "Launching"),
}


def world_after(observed: phases.Observed, decision: phases.Decision) -> phases.Observed:
    """The world once `decision` is carried out, as the next watch event shows it."""
    child = observed.child
    for action in decision.actions:
        if isinstance(action, phases.DeleteJob) and child is not None:
            child = dataclasses.replace(
                child, deleting=True, deletion_timestamp=phases.now_text(observed.now)
            )
        if isinstance(action, phases.CreateJob):
            child = JobView(name="flan", attempt=action.attempt, suspended=False)
    return phases.Observed(**{**observed.__dict__, "status": decision.status, "child": child})


def changes(decision: phases.Decision, observed: phases.Observed) -> list[str]:
    """What `decision` changes or does, on top of the status it was given."""
    found = [f"status {decision.status.phase}"] if decision.status != observed.status else []
    found += [f"transition {decision.transition}"] if decision.transition else []
    found += [f"event {e.reason}" for e in decision.events] + [f"counter {c}" for c in decision.counters]
    return found + [f"action {a}" for a in decision.actions]


@pytest.mark.parametrize(("phase", "event", "expected"), CASES, ids=[f"{p}-{e}" for p, e, _ in CASES])
def test_deciding_again_on_the_world_it_left_changes_nothing(phase, event, expected):
    observed = observation(phase, event)
    first = phases.decide(observed)
    counted = list(first.counters)
    after = world_after(observed, first)
    again = phases.decide(after)
    if (phase, event) in SECOND_STEPS:
        assert (first.status.phase, again.status.phase) == SECOND_STEPS[phase, event]
        assert again.transition == SECOND_STEPS[phase, event] and again.counters == []
        counted += again.counters
        after, again = world_after(after, again), phases.decide(world_after(after, again))
    assert changes(again, after) == []
    assert len(counted) == len(set(counted))


def test_only_the_listed_cases_take_a_second_step():
    """SECOND_STEPS is exact: a listed case that now settles in one decision must be removed."""
    stepping = set()
    for phase, event, _ in CASES:
        observed = observation(phase, event)
        first = phases.decide(observed)
        if changes(phases.decide(world_after(observed, first)), world_after(observed, first)):
            stepping.add((phase, event))
    assert stepping == set(SECOND_STEPS)


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
    d = phases.decide(new_job())
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
    observed = new_job()
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
