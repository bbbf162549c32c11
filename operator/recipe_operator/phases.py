"""The phase state machine of a RecipeTrainingJob, as one pure function.

`decide(observed)` looks at the job (spec and status), its current Job and pods and the
time, and returns the new status, the side effects to carry out and the events to post.
It is level-triggered: calling it again with the same observation changes nothing, so the
handlers may call it on any watch event, on a timer, or after an operator restart.

    Pending -> Launching -> Running <-> Restarting -> (Launching ->) Running -> Succeeded | Failed
    any non-terminal phase -> Suspended -> (unsuspend) Launching with a new attempt

While Kueue holds the attempt's Job suspended, the phase stays Pending with a `Queued`
condition; the pending timeout counts from `status.admissionTime` (when the Job was last let
run), never from the queueing time. Status is written before side effects are carried out,
so a crash between the two is repaired by the next call instead of counting a restart twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from recipe_api.status import (
    AVOIDED_NODES_LIMIT,
    TERMINAL_PHASES,
    Condition,
    Failure,
    LastCheckpoint,
    RecipeTrainingJobStatus,
)
from recipe_api.trainer_config import TerminationSummary
from recipe_api.v1alpha1 import RecipeTrainingJob
from recipe_api.validation import FieldError

from .builders.job import KUEUE_QUEUE_LABEL
from .failures import (
    DISRUPTIONS,
    CreateFailure,
    FailureInfo,
    JobView,
    PodView,
    Reason,
    first_failure,
    pending_seconds_since,
)

EventType = Literal["Normal", "Warning"]
LAUNCH_RECHECK_SECONDS = 30.0


@dataclass(frozen=True)
class EnsureChildren:
    """Create the ConfigMap, Service and PVC if absent (idempotent)."""


@dataclass(frozen=True)
class CreateJob:
    attempt: int
    active_deadline_seconds: int | None = None
    avoid_nodes: tuple[str, ...] = ()  # nodes whose GPU failed (status.avoidedNodes)


@dataclass(frozen=True)
class DeleteJob:
    reason: str


@dataclass(frozen=True)
class ForceDeletePods:
    """The old gang's pods outlived the termination timeout (a lost node never confirms their
    deletion): delete them with gracePeriodSeconds 0 so the Foreground Job deletion can finish."""

    attempt: int | None


@dataclass(frozen=True)
class OrphanJob:
    """Still stuck after force-deleting the pods (e.g. a finalizer nobody removes): re-delete the
    old Job with propagation Orphan, so it goes now and the stuck pods no longer block the gang."""


@dataclass(frozen=True)
class DeleteOwner:
    """ttlSecondsAfterFinished passed: delete the RecipeTrainingJob (children follow by owner refs)."""


Action = EnsureChildren | CreateJob | DeleteJob | ForceDeletePods | OrphanJob | DeleteOwner


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything decide() may look at. `job` is None when the spec is invalid (see `errors`)."""

    job: RecipeTrainingJob | None
    status: RecipeTrainingJobStatus
    now: datetime
    errors: tuple[FieldError, ...] = ()
    child: JobView | None = None
    pods: tuple[PodView, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    created: str | None = None  # metadata.creationTimestamp of the RecipeTrainingJob
    # A same-named object this job does not own (never adopted, never deleted): what it is.
    conflict: str | None = None
    # Why the Job controller cannot create the attempt's pods (its FailedCreate events).
    create_failure: CreateFailure | None = None
    # How long an old gang may take to terminate before its pods are force-deleted.
    termination_timeout: float = 300.0


@dataclass
class Decision:
    status: RecipeTrainingJobStatus
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    transition: tuple[str, str] | None = None
    counters: list[str] = field(default_factory=list)  # created, succeeded, failed, restarted
    seconds_to_running: float | None = None
    requeue_after: float | None = None


def now_text(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[Condition], type_: str, status: bool, reason: str, message: str, now: datetime
) -> list[Condition]:
    """Kubernetes convention: lastTransitionTime moves only when the status flips."""
    value = "True" if status else "False"
    result, found = [], False
    for cond in conditions:
        if cond.type != type_:
            result.append(cond)
            continue
        found = True
        changed = cond.status != value
        result.append(
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=now_text(now) if changed else cond.last_transition_time,
            )
        )
    if not found:
        result.append(
            Condition(
                type=type_, status=value, reason=reason, message=message, last_transition_time=now_text(now)
            )
        )
    return result


def condition_is(conditions: list[Condition], type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in conditions)


class _Draft:
    def __init__(self, observed: Observed):
        self.o = observed
        self.d = Decision(status=observed.status.model_copy(deep=True))

    @property
    def st(self) -> RecipeTrainingJobStatus:
        return self.d.status

    def condition(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        if not status and not any(c.type == type_ for c in self.st.conditions):
            return  # a condition that never held needs no False entry
        self.st.conditions = set_condition(self.st.conditions, type_, status, reason, message, self.o.now)

    def goto(self, phase: str, reason: str, message: str, type_: EventType = "Normal") -> None:
        self.st.phase = phase  # type: ignore[assignment]
        original = self.o.status.phase
        self.d.transition = (original, phase) if phase != original else None
        self.d.events.append(Event(type_, reason, message))

    def fail(self, reason: Reason, message: str, failure: FailureInfo | None = None) -> None:
        self.st.failure = Failure(
            reason=reason,
            message=message,
            pod=failure.pod if failure else None,
            exit_code=failure.exit_code if failure else None,
        )
        self.st.completion_time = now_text(self.o.now)
        self.condition("Running", False, reason, message)
        self.condition("Restarting", False, reason, message)
        self.condition("Failed", True, reason, message)
        self.goto("Failed", reason, message, "Warning")
        self.d.counters.append("failed")


def decide(o: Observed) -> Decision:
    draft = _Draft(o)
    if draft.st.phase in TERMINAL_PHASES:
        if o.job is not None:
            _finished(draft, o.job)
    elif o.conflict is not None:
        message = f"{o.conflict}; rename the job or remove that object"
        draft.condition("Conflict", True, Reason.CONFLICTING_OBJECT, message)
        draft.fail(Reason.CONFLICTING_OBJECT, message)
    elif o.job is None:
        _invalid(draft)
    elif o.job.spec.suspend:
        _suspend(draft)
    else:
        _run(draft, o.job)
    return draft.d


def _invalid(draft: _Draft) -> None:
    o, st = draft.o, draft.st
    if o.child is not None and not o.child.deleting:
        draft.d.actions.append(DeleteJob(Reason.INVALID_SPEC))
    if st.phase == "Failed" and condition_is(st.conditions, Reason.INVALID_SPEC):
        return
    message = "; ".join(str(e) for e in o.errors) or Reason.INVALID_SPEC.message
    draft.condition(Reason.INVALID_SPEC, True, Reason.INVALID_SPEC, message)
    draft.fail(Reason.INVALID_SPEC, message)


def _finished(draft: _Draft, job: RecipeTrainingJob) -> None:
    ttl = job.spec.run_policy.ttl_seconds_after_finished
    finished = draft.st.completion_time
    if ttl is None or not finished:
        return
    left = ttl - (pending_seconds_since(finished, draft.o.now) or 0.0)
    if left <= 0:
        draft.d.actions.append(DeleteOwner())
    else:
        draft.d.requeue_after = left


def _suspend(draft: _Draft) -> None:
    o = draft.o
    if o.child is not None and not o.child.deleting:
        draft.d.actions.append(DeleteJob("Suspended"))
    if draft.st.phase != "Suspended":
        message = "spec.suspend is true: pods removed, checkpoints and config kept"
        draft.condition("Running", False, "Suspended", message)
        draft.condition("Queued", False, "Suspended", message)
        draft.condition("Suspended", True, "Suspended", message)
        draft.goto("Suspended", "Suspended", message)


def _run(draft: _Draft, job: RecipeTrainingJob) -> None:
    o, st = draft.o, draft.st
    resumed = st.phase == "Suspended"
    if resumed:
        draft.condition("Suspended", False, "Resumed", "spec.suspend is false")
        if st.start_time:  # it ran before: a new attempt resumes from the newest checkpoint
            st.attempt += 1
        st.phase = "Pending"
    current = o.child if o.child is not None and o.child.attempt == st.attempt else None
    if o.child is not None and current is None:
        # An older attempt's Job: the gang must be gone before the next one starts.
        if not o.child.deleting:
            draft.d.actions.append(DeleteJob(f"replaced by attempt {st.attempt}"))
        else:
            _escalate_termination(draft, o.child)
        if resumed:
            draft.goto("Launching", "Resumed", f"resuming as attempt {st.attempt}")
        return
    if current is None:
        if st.phase == "Running":
            _on_failure(draft, job, FailureInfo(Reason.JOB_DELETED, Reason.JOB_DELETED.message, True))
            return
        _launch(draft, job, resumed)
        return
    if current.deleting:
        return
    _observe(draft, job, current)


def _escalate_termination(draft: _Draft, old: JobView) -> None:
    """An old gang that will not go: force-delete its pods after the termination timeout, and
    orphan them after twice that (a pod on a lost node is never confirmed deleted otherwise)."""
    o = draft.o
    waited = pending_seconds_since(old.deletion_timestamp, o.now)
    if waited is None:
        return
    timeout = o.termination_timeout
    if waited < timeout:
        draft.d.requeue_after = max(1.0, timeout - waited)
        return
    stuck = [p.name for p in o.pods if p.attempt == old.attempt]
    message = (
        f"attempt {old.attempt}'s Job has been terminating for {int(waited)}s "
        f"(over {int(timeout)}s); force-deleting its pods {', '.join(stuck) or '(none left)'}"
    )
    if waited >= 2 * timeout:
        message = f"attempt {old.attempt}'s Job still terminating after {int(waited)}s; orphaning its pods"
        draft.d.actions.append(OrphanJob())
    else:
        draft.d.actions.append(ForceDeletePods(old.attempt))
        draft.d.requeue_after = max(1.0, 2 * timeout - waited)
    if not any(c.type == "TerminationTimeout" and c.message == message for c in draft.st.conditions):
        draft.condition("TerminationTimeout", True, "GangTerminationTimeout", message)
        draft.d.events.append(Event("Warning", "GangTerminationTimeout", message))


def _launch(draft: _Draft, job: RecipeTrainingJob, resumed: bool) -> None:
    o, st = draft.o, draft.st
    run_policy = job.spec.run_policy
    deadline_left = None
    if run_policy.active_deadline_seconds is not None:
        elapsed = pending_seconds_since(st.start_time, o.now) or 0.0
        deadline_left = int(run_policy.active_deadline_seconds - elapsed)
        if deadline_left <= 0:
            draft.fail(
                Reason.DEADLINE_EXCEEDED, f"{Reason.DEADLINE_EXCEEDED.message} before the next attempt"
            )
            return
    first = st.start_time is None
    st.start_time = st.start_time or now_text(o.now)
    draft.d.actions += [EnsureChildren(), CreateJob(st.attempt, deadline_left, tuple(st.avoided_nodes))]
    if first:
        draft.d.counters.append("created")
    draft.condition("Created", True, "JobCreated", f"attempt {st.attempt} created")
    draft.condition("Restarting", False, "Relaunched", f"attempt {st.attempt} created")
    if KUEUE_QUEUE_LABEL in o.labels:
        st.admission_time = None
        message = f"waiting for admission by queue {o.labels[KUEUE_QUEUE_LABEL]!r}"
        draft.condition("Queued", True, "WaitingForAdmission", message)
        draft.goto("Pending", "Queued", message)
        return
    st.admission_time = now_text(o.now)
    draft.condition("Queued", False, "NotQueued", f"attempt {st.attempt} created without a queue label")
    reason = "Resumed" if resumed else "Launching"
    draft.goto("Launching", reason, f"attempt {st.attempt}: {job.spec.resources.nodes} pod(s) starting")


def _observe(draft: _Draft, job: RecipeTrainingJob, current: JobView) -> None:
    o, st = draft.o, draft.st
    if current.suspended:
        if not condition_is(st.conditions, "Queued"):
            draft.condition(
                "Queued", True, "WaitingForAdmission", "the attempt's Job is suspended by a queue"
            )
            draft.goto("Pending", "Queued", "the attempt's Job is suspended by a queue")
        return
    if condition_is(st.conditions, "Queued") or st.admission_time is None:
        st.admission_time = now_text(o.now)
        if condition_is(st.conditions, "Queued"):
            draft.condition("Queued", False, "Admitted", "the queue admitted the job")
    if st.phase in ("Pending", "Restarting"):
        reason = "Admitted" if st.phase == "Pending" else "Launching"
        draft.goto("Launching", reason, f"attempt {st.attempt}: {job.spec.resources.nodes} pod(s) starting")
    pods = [p for p in o.pods if p.attempt in (None, st.attempt)]
    if current.complete:
        _succeed(draft, pods)
        return
    timeout = job.spec.run_policy.pending_timeout_seconds
    waited = pending_seconds_since(st.admission_time, o.now)
    if o.create_failure is not None:
        if _create_failed(draft, o.create_failure, waited, timeout):
            return
    elif condition_is(st.conditions, "CreateFailed"):
        draft.condition("CreateFailed", False, "PodsCreated", "the attempt's pods were created")
    failure = first_failure(current, pods, waited, timeout)
    never_ran = o.status.phase != "Running"
    if failure is None and never_ran and not pods and waited is not None and waited > timeout:
        # No pod at all (refusals whose events expired, a stuck Job controller): say so, not wait.
        message = (
            f"no pod of attempt {st.attempt} was created within runPolicy.pendingTimeoutSeconds "
            f"({int(timeout)}s); see the Job's events (kubectl describe job {current.name})"
        )
        failure = FailureInfo(Reason.PODS_NOT_CREATED, message, False)
    if failure is not None and failure.reason is Reason.UNSCHEDULABLE and st.failure.reason in DISRUPTIONS:
        # The capacity went to whatever preempted or evicted the gang: wait for it, as a queue would.
        failure = None
    if failure is not None:
        _on_failure(draft, job, failure)
        return
    running = sum(p.running for p in pods)
    if waited is not None and running < job.spec.resources.nodes:
        # Look again when the pending timeout is due, and meanwhile every LAUNCH_RECHECK_SECONDS:
        # refusals of pods change no Job or pod (they are only events).
        draft.d.requeue_after = max(1.0, min(timeout - waited, LAUNCH_RECHECK_SECONDS))
    if running >= job.spec.resources.nodes and st.phase != "Running":
        first_time = not any(c.type == "Running" for c in st.conditions)
        message = f"attempt {st.attempt}: all {running} pod(s) running"
        draft.condition("Running", True, "AllPodsRunning", message)
        draft.condition("Restarting", False, "AllPodsRunning", message)
        draft.goto("Running", "Running", message)
        if first_time and o.created:
            draft.d.seconds_to_running = pending_seconds_since(o.created, o.now)


def _create_failed(draft: _Draft, failure: CreateFailure, waited: float | None, timeout: float) -> bool:
    """The API refuses the attempt's pods. Permanent causes fail the job now; the others keep it
    Launching with a `CreateFailed` condition carrying the API's message until the pending
    timeout, then fail it. True when the job failed."""
    if failure.permanent or (waited is not None and waited > timeout):
        suffix = "" if failure.permanent else f" (for over {int(timeout)}s)"
        draft.fail(
            failure.reason, f"pods of attempt {draft.st.attempt} cannot be created: {failure.message}{suffix}"
        )
        draft.d.actions.append(DeleteJob(failure.reason))
        return True
    draft.condition("CreateFailed", True, failure.reason, failure.message)
    if waited is not None:
        draft.d.requeue_after = max(1.0, timeout - waited)
    return False


def fail_launch(observed: Observed, failure: CreateFailure) -> Decision:
    """The operator's own create of a child was refused (4xx) or collided with an object the job
    does not own: the job ends Failed with the API's message, never Launching forever."""
    draft = _Draft(observed)
    if draft.st.phase in TERMINAL_PHASES:
        return draft.d
    if failure.reason is Reason.CONFLICTING_OBJECT:
        draft.condition("Conflict", True, failure.reason, failure.message)
    draft.fail(failure.reason, failure.message)
    return draft.d


def _succeed(draft: _Draft, pods: list[PodView]) -> None:
    st = draft.st
    rank0 = next((p for p in sorted(pods, key=lambda p: p.index) if p.index == 0), None)
    message = f"training finished after {st.restarts} restart(s)"
    if rank0 is not None and rank0.terminated_message:
        try:
            summary = TerminationSummary.model_validate_json(rank0.terminated_message)
        except ValueError:
            summary = None
        if summary is not None:
            evaluation = summary.evaluation.model_copy()
            evaluation.best_checkpoint = evaluation.best_checkpoint or summary.best_checkpoint
            st.evaluation = evaluation
            st.last_checkpoint = LastCheckpoint(
                step=summary.step,
                path=summary.last_checkpoint or st.last_checkpoint.path,
                time=st.last_checkpoint.time,
            )
            st.progress.step = summary.step
            st.progress.epoch = summary.epoch
            message = f"training finished at step {summary.step}" + (
                " (early stop)" if summary.stopped_early else ""
            )
    st.completion_time = now_text(draft.o.now)
    st.progress.eta = None
    if st.progress.total_steps:
        st.progress.percent = 100.0
    draft.condition("Running", False, "Succeeded", message)
    draft.condition("Succeeded", True, "Succeeded", message)
    draft.goto("Succeeded", "Succeeded", message)
    draft.d.counters.append("succeeded")


def _on_failure(draft: _Draft, job: RecipeTrainingJob, failure: FailureInfo) -> None:
    st = draft.st
    limit = job.spec.run_policy.backoff_limit
    where = f" in pod {failure.pod}" if failure.pod else ""
    disrupted = failure.reason in DISRUPTIONS  # the cluster's doing, not the job's: not counted
    if failure.retryable and (disrupted or st.restarts - st.disruptions < limit):
        st.restarts += 1
        st.disruptions += disrupted
        st.attempt += 1
        st.failure = Failure(
            reason=failure.reason, message=failure.message, pod=failure.pod, exit_code=failure.exit_code
        )
        counted = (
            "not counted against backoffLimit"
            if disrupted
            else f"restart {st.restarts - st.disruptions} of {limit}"
        )
        message = (
            f"{failure.reason}{where}: {failure.message}; restarting the gang as attempt {st.attempt} "
            f"({counted}) from the last checkpoint"
        )
        draft.condition("Running", False, failure.reason, message)
        draft.condition("Restarting", True, failure.reason, message)
        draft.goto("Restarting", "Restarting", message, "Warning")
        draft.d.actions.append(DeleteJob(failure.reason))
        draft.d.counters.append("restarted")
        if failure.reason is Reason.GPU_FAULT and failure.node:
            _avoid_node(draft, failure.node, failure.pod)
        return
    if failure.retryable:
        message = f"{failure.reason}{where}: {failure.message}; backoffLimit {limit} restart(s) exhausted"
    else:
        message = f"{failure.reason}{where}: {failure.message}"
    draft.fail(failure.reason, message, failure)
    draft.d.actions.append(DeleteJob(failure.reason))


def _avoid_node(draft: _Draft, node: str, pod: str | None) -> None:
    """Keep the next attempts off a node whose GPU failed (node affinity in the Job builder), and
    say so in an event that names it, for whoever drains or repairs it."""
    st = draft.st
    avoided = [n for n in st.avoided_nodes if n != node] + [node]
    st.avoided_nodes = avoided[-AVOIDED_NODES_LIMIT:]
    message = (
        f"node {node}: its GPU failed under pod {pod or '(unknown)'}; "
        f"attempt {st.attempt} avoids it (status.avoidedNodes)"
    )
    draft.d.events.append(Event("Warning", Reason.GPU_FAULT, message))
