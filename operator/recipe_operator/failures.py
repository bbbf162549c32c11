"""What went wrong with a pod or a Job, and whether restarting the gang can help.

Pure: reads pod/Job dicts as the API returns them. The policy follows Kubeflow's `ExitCode`
restart policy: exit codes 1-127 are the trainer's own verdict (bad config, a bug) and are
permanent; 128+ mean a signal (the node, the OOM killer, a preemption) and are retryable, as
are evictions and lost nodes. Stuck image pulls and unschedulable pods are permanent once they
have waited past runPolicy.pendingTimeoutSeconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recipe_api.contract import EXIT_CODE_PEER_LOST, LABEL_ATTEMPT, TRAINER_CONTAINER_NAME

from .builders.job import COMPLETION_INDEX_ANNOTATION

# Container/pod reasons that mean "the infrastructure failed", whatever the exit code says.
RETRYABLE_REASONS = {
    "OOMKilled",
    "Evicted",
    "Preempted",
    "NodeLost",
    "NodeShutdown",
    "ContainerStatusUnknown",
    "PodFailed",
    "JobDeleted",
}
# Waiting reasons that never heal by themselves once they have lasted the pending timeout.
STUCK_WAITING_REASONS = {"ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
# Waiting reasons that never heal at all.
HOPELESS_WAITING_REASONS = {"InvalidImageName"}
# DisruptionTarget condition reasons (Kubernetes 1.26+) -> our reason.
DISRUPTION_REASONS = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
}
POD_STATUS_REASONS = {"Evicted": "Evicted", "NodeLost": "NodeLost", "Shutdown": "NodeShutdown"}


@dataclass(frozen=True)
class FailureInfo:
    reason: str
    message: str
    retryable: bool
    pod: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class PodView:
    """The parts of a trainer pod the operator decides on."""

    name: str
    index: int
    attempt: int | None
    phase: str
    pod_ip: str | None = None
    status_reason: str | None = None
    status_message: str = ""
    deleting: bool = False
    unschedulable_message: str | None = None
    disruption_reason: str | None = None
    waiting_reason: str | None = None
    waiting_message: str = ""
    terminated_reason: str | None = None
    terminated_exit_code: int | None = None
    terminated_message: str = ""

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.deleting

    @classmethod
    def from_dict(cls, pod: dict[str, Any]) -> PodView:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        index = annotations.get(COMPLETION_INDEX_ANNOTATION, labels.get(COMPLETION_INDEX_ANNOTATION, "0"))
        attempt = labels.get(LABEL_ATTEMPT)
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        scheduled = conditions.get("PodScheduled") or {}
        disruption = conditions.get("DisruptionTarget") or {}
        container = next(
            (c for c in status.get("containerStatuses") or [] if c.get("name") == TRAINER_CONTAINER_NAME),
            {},
        )
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        return cls(
            name=meta.get("name", ""),
            index=int(index) if str(index).isdigit() else 0,
            attempt=int(attempt) if attempt and str(attempt).isdigit() else None,
            phase=status.get("phase", "Pending"),
            pod_ip=status.get("podIP"),
            status_reason=status.get("reason"),
            status_message=status.get("message", ""),
            deleting=bool(meta.get("deletionTimestamp")),
            unschedulable_message=(
                scheduled.get("message", "pod cannot be scheduled")
                if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
                else None
            ),
            disruption_reason=disruption.get("reason") if disruption.get("status") == "True" else None,
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message", ""),
            terminated_reason=terminated.get("reason"),
            terminated_exit_code=terminated.get("exitCode"),
            terminated_message=(terminated.get("message") or "").strip(),
        )


@dataclass(frozen=True)
class JobView:
    """The parts of the attempt's batch/v1 Job the operator decides on."""

    name: str
    attempt: int | None
    suspended: bool = False
    deleting: bool = False
    complete: bool = False
    failed_reason: str | None = None
    failed_message: str = ""
    uid: str | None = None
    deletion_timestamp: str | None = None  # when its (Foreground) deletion began
    active: int = 0  # pods the Job controller counts as running or pending

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> JobView:
        meta = job.get("metadata") or {}
        attempt = (meta.get("labels") or {}).get(LABEL_ATTEMPT)
        conditions = {
            c.get("type"): c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"
        }
        failed = conditions.get("Failed") or {}
        return cls(
            name=meta.get("name", ""),
            attempt=int(attempt) if attempt and str(attempt).isdigit() else None,
            suspended=bool((job.get("spec") or {}).get("suspend")),
            deleting=bool(meta.get("deletionTimestamp")),
            complete="Complete" in conditions,
            failed_reason=failed.get("reason") if failed else None,
            failed_message=failed.get("message", "") if failed else "",
            uid=meta.get("uid"),
            deletion_timestamp=meta.get("deletionTimestamp"),
            active=int((job.get("status") or {}).get("active") or 0),
        )


def classify_exit(reason: str | None, exit_code: int) -> tuple[str, bool]:
    """(our reason, retryable) for a container that ended with a non-zero exit code."""
    if reason in RETRYABLE_REASONS:
        return reason, True
    if exit_code == EXIT_CODE_PEER_LOST:  # this rank is fine: another one of the gang went away
        return "PeerLost", True
    if exit_code >= 128:
        return "Signaled", True
    return "TrainerError", False


def classify_pod(pod: PodView, pending_seconds: float | None, pending_timeout: float) -> FailureInfo | None:
    """The pod's failure, or None while it is healthy (or may still become healthy).

    `pending_seconds`: how long the attempt has been admitted; waits count only past the timeout.
    """
    status_reason = POD_STATUS_REASONS.get(pod.status_reason or "")
    if status_reason:
        return FailureInfo(status_reason, pod.status_message or status_reason, True, pod.name)
    if pod.disruption_reason and (pod.phase == "Failed" or pod.deleting):
        reason = DISRUPTION_REASONS.get(pod.disruption_reason, "Evicted")
        return FailureInfo(reason, f"pod disrupted: {pod.disruption_reason}", True, pod.name)
    code = pod.terminated_exit_code
    if code is not None and code != 0:
        reason, retryable = classify_exit(pod.terminated_reason, code)
        detail = pod.terminated_message or pod.terminated_reason or "container failed"
        message = (
            f"exit code {code}: {detail}" if reason != "OOMKilled" else f"out of memory (exit code {code})"
        )
        return FailureInfo(reason, message, retryable, pod.name, code)
    if pod.waiting_reason in HOPELESS_WAITING_REASONS:
        return FailureInfo(pod.waiting_reason, pod.waiting_message or pod.waiting_reason, False, pod.name)
    timed_out = pending_seconds is not None and pending_seconds > pending_timeout
    if pod.waiting_reason in STUCK_WAITING_REASONS and timed_out:
        message = f"{pod.waiting_message or pod.waiting_reason} (waited over {int(pending_timeout)}s)"
        return FailureInfo(pod.waiting_reason, message, False, pod.name)
    if pod.unschedulable_message is not None and timed_out:
        message = f"{pod.unschedulable_message} (unschedulable for over {int(pending_timeout)}s)"
        return FailureInfo("Unschedulable", message, False, pod.name)
    if pod.phase == "Failed":
        return FailureInfo("PodFailed", pod.status_message or "pod failed", True, pod.name)
    return None


def classify_job(job: JobView) -> FailureInfo | None:
    """Failures the Job controller reports itself; DeadlineExceeded is the runPolicy deadline."""
    if job.failed_reason == "DeadlineExceeded":
        return FailureInfo(
            "DeadlineExceeded", job.failed_message or "runPolicy.activeDeadlineSeconds passed", False
        )
    if job.failed_reason:
        return FailureInfo("PodFailed", job.failed_message or job.failed_reason, True)
    return None


def first_failure(
    job: JobView | None, pods: list[PodView], pending_seconds: float | None, pending_timeout: float
) -> FailureInfo | None:
    """The failure that explains the attempt: a pod's own reason beats the Job's summary;
    permanent reasons beat retryable ones (one bad rank fails everything anyway)."""
    found = [
        f
        for p in sorted(pods, key=lambda p: p.index)
        if (f := classify_pod(p, pending_seconds, pending_timeout))
    ]
    permanent = [f for f in found if not f.retryable]
    if permanent:
        return permanent[0]
    if job is not None and (job_failure := classify_job(job)) and not job_failure.retryable:
        return job_failure
    if found:  # a rank that only lost its peer explains less than the peer's own failure
        return min(found, key=lambda f: f.reason == "PeerLost")
    return classify_job(job) if job is not None else None


def pending_seconds_since(start: str | None, now: datetime) -> float | None:
    if not start:
        return None
    return (now - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
