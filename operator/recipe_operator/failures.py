"""Every failure reason the operator writes, and how a pod, a Job or a refused create maps onto one.

`Reason` is the vocabulary: each member is a `status.failure.reason` (and condition and event
reason) the operator can write, with its retry class and what it means for the user. Adding a
reason is one member here and one rule in a classify function below.

Pure: reads pod/Job dicts as the API returns them. The policy follows Kubeflow's `ExitCode`
restart policy: exit codes 1-127 are the trainer's own verdict (bad config, a bug) and are
permanent; 128+ mean a signal (the node, the OOM killer, a preemption) and are retryable, as
are evictions and lost nodes. Stuck image pulls and unschedulable pods are permanent once they
have waited past runPolicy.pendingTimeoutSeconds.

On GPUs the words decide before the code (`classify_exit`): torch's NCCL watchdog kills a rank
with SIGABRT on a timeout or a remote error, DeepSpeed's launcher then exits 250 (its
sys.exit(-6)), and only the log tail says the rank was a victim (PeerLost); a CUDA fault exits 1
like a bug, but the GPU failed, not the program (GPUFault, retried elsewhere); an image without
kernels for the GPU can never run there (UnsupportedGPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from recipe_api.contract import (
    EXIT_CODE_PEER_LOST,
    GPU_FAULT_MARKERS,
    LABEL_ATTEMPT,
    PEER_LOST_MARKERS,
    TRAINER_CONTAINER_NAME,
    UNSUPPORTED_GPU_MARKERS,
    UNSUPPORTED_GPU_PREFIX,
)

from .builders.job import COMPLETION_INDEX_ANNOTATION


class Retry(Enum):
    """What the operator does about a failure of this reason."""

    RESTART = "restart the gang from the last checkpoint, up to runPolicy.backoffLimit times"
    WAIT = "keep the attempt waiting; fail the job once runPolicy.pendingTimeoutSeconds passed"
    NEVER = "fail the job now: repeating cannot help"


class Reason(StrEnum):
    """A failure reason: its CamelCase name (what lands in status), retry class and meaning."""

    retry: Retry
    message: str

    def __new__(cls, value: str, retry: Retry, message: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.retry = retry
        member.message = message
        return member

    # ---- the infrastructure failed a pod (whatever the exit code says)
    OOM_KILLED = "OOMKilled", Retry.RESTART, "out of memory"
    EVICTED = "Evicted", Retry.RESTART, "the kubelet or the eviction API removed a pod"
    PREEMPTED = "Preempted", Retry.RESTART, "the scheduler preempted a pod for a higher-priority one"
    NODE_LOST = "NodeLost", Retry.RESTART, "a pod's node stopped answering"
    NODE_SHUTDOWN = "NodeShutdown", Retry.RESTART, "a pod's node shut down"
    CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown", Retry.RESTART, "the kubelet lost the container"
    POD_FAILED = "PodFailed", Retry.RESTART, "pod failed"
    JOB_DELETED = "JobDeleted", Retry.RESTART, "the attempt's Job was deleted"
    # ---- the trainer's exit code (contract.EXIT_CODE_*)
    PEER_LOST = "PeerLost", Retry.RESTART, "another rank of the gang went away; this one is a victim"
    SIGNALED = "Signaled", Retry.RESTART, "a signal ended the trainer (exit code 128 or more)"
    TRAINER_ERROR = "TrainerError", Retry.NEVER, "the trainer's own verdict (exit code 1-127)"
    START_ERROR = (
        "StartError",
        Retry.NEVER,
        "the container could not start: its command is missing from the image, or a hook failed",
    )
    # ---- the GPU (from the trainer's message or log tail, whatever the exit code)
    GPU_FAULT = (
        "GPUFault",
        Retry.RESTART,
        "the GPU or its driver failed (Xid, ECC, illegal memory access); the next attempt avoids the node",
    )
    UNSUPPORTED_GPU = "UnsupportedGPU", Retry.NEVER, "the trainer image has no kernels for this GPU"
    # ---- a pod that does not start
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff", Retry.WAIT, "the trainer image cannot be pulled"
    ERR_IMAGE_PULL = "ErrImagePull", Retry.WAIT, "the trainer image cannot be pulled"
    CREATE_CONTAINER_CONFIG_ERROR = (
        "CreateContainerConfigError",
        Retry.WAIT,
        "the container's config (a Secret or ConfigMap it names) is missing",
    )
    CREATE_CONTAINER_ERROR = (
        "CreateContainerError",
        Retry.WAIT,
        "the runtime cannot create the container (a mount, the image's config or the runtime itself)",
    )
    CONTAINER_CREATING = (
        "ContainerCreating",
        Retry.WAIT,
        "the pod never got past ContainerCreating: a volume that cannot mount, or a network (CNI) "
        "or sandbox failure; `kubectl describe pod` shows the kubelet's events",
    )
    INVALID_IMAGE_NAME = "InvalidImageName", Retry.NEVER, "the image reference is not valid"
    UNSCHEDULABLE = "Unschedulable", Retry.WAIT, "pod cannot be scheduled"
    PODS_NOT_CREATED = "PodsNotCreated", Retry.NEVER, "no pod of the attempt was created"
    # ---- the API server refused a create (the operator's own, or the Job controller's)
    QUOTA_EXCEEDED = "QuotaExceeded", Retry.WAIT, "a ResourceQuota is used up; it frees when jobs end"
    PRIORITY_CLASS_NOT_FOUND = "PriorityClassNotFound", Retry.NEVER, "spec names a missing PriorityClass"
    POD_SECURITY_VIOLATION = (
        "PodSecurityViolation",
        Retry.NEVER,
        "the pod violates the namespace's Pod Security level",
    )
    FAILED_CREATE = "FailedCreate", Retry.WAIT, "pods cannot be created (a 4xx on the operator's call: never)"
    CONFLICTING_OBJECT = "ConflictingObject", Retry.NEVER, "a same-named object belongs to someone else"
    VOLUME_ACCESS_MODE = (
        "VolumeAccessMode",
        Retry.NEVER,
        "a volume's access mode does not let every node of the gang mount it (its files are kept)",
    )
    # ---- the job itself
    INVALID_SPEC = "InvalidSpec", Retry.NEVER, "invalid spec"
    DEADLINE_EXCEEDED = "DeadlineExceeded", Retry.NEVER, "runPolicy.activeDeadlineSeconds passed"


# Waiting reasons that never heal by themselves once they have lasted the pending timeout.
STUCK_WAITING_REASONS = {
    Reason.IMAGE_PULL_BACK_OFF,
    Reason.ERR_IMAGE_PULL,
    Reason.CREATE_CONTAINER_CONFIG_ERROR,
    Reason.CREATE_CONTAINER_ERROR,
    Reason.CONTAINER_CREATING,
}
# Runtime reasons of a container that ended without ever running its command (containerd's
# StartError, exit code 128; Docker's ContainerCannotRun): a restart would meet the same image.
NEVER_STARTED_REASONS = {"StartError": Reason.START_ERROR, "ContainerCannotRun": Reason.START_ERROR}
# Restarts the cluster caused (preemption, eviction, a drain, a lost or shut-down node): they do
# not count against runPolicy.backoffLimit, which bounds the job's own failures.
DISRUPTIONS = {Reason.PREEMPTED, Reason.EVICTED, Reason.NODE_LOST, Reason.NODE_SHUTDOWN}
# Waiting reasons that never heal at all.
HOPELESS_WAITING_REASONS = {Reason.INVALID_IMAGE_NAME}
# DisruptionTarget condition reasons (Kubernetes 1.26+) -> our reason.
DISRUPTION_REASONS = {
    "PreemptionByScheduler": Reason.PREEMPTED,
    "PreemptionByKubeScheduler": Reason.PREEMPTED,
    "DeletionByTaintManager": Reason.NODE_LOST,
    "DeletionByPodGC": Reason.NODE_LOST,
    "EvictionByEvictionAPI": Reason.EVICTED,
    "TerminationByKubelet": Reason.EVICTED,
}
# status.reason of a failed pod -> our reason. Graceful node shutdown writes "Terminated" (1.21+;
# "Shutdown" before), and "NodeShutdown" for a pod the shutting-down node refused to admit
# (pkg/kubelet/nodeshutdown); its DisruptionTarget reason, TerminationByKubelet, would say Evicted.
POD_STATUS_REASONS = {
    "Evicted": Reason.EVICTED,
    "NodeLost": Reason.NODE_LOST,
    "Shutdown": Reason.NODE_SHUTDOWN,
    "Terminated": Reason.NODE_SHUTDOWN,
    "NodeShutdown": Reason.NODE_SHUTDOWN,
}
# FailedCreate messages (the API server's words, as the Job controller relays them) -> our reason.
CREATE_FAILURE_MESSAGES = {
    "exceeded quota": Reason.QUOTA_EXCEEDED,
    "no PriorityClass with name": Reason.PRIORITY_CLASS_NOT_FOUND,
    "violates PodSecurity": Reason.POD_SECURITY_VIOLATION,
}


@dataclass(frozen=True)
class FailureInfo:
    reason: Reason
    message: str
    retryable: bool
    pod: str | None = None
    exit_code: int | None = None
    node: str | None = None  # where the pod ran: a GPUFault's next attempt avoids it


@dataclass(frozen=True)
class PodView:
    """The parts of a trainer pod the operator decides on."""

    name: str
    index: int
    attempt: int | None
    phase: str
    pod_ip: str | None = None
    node_name: str | None = None
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
            node_name=(pod.get("spec") or {}).get("nodeName"),
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


def _known(reason: str | None) -> Reason | None:
    return Reason._value2member_map_.get(reason or "")  # type: ignore[return-value]


def _says(message: str, markers: tuple[str, ...]) -> bool:
    text = message.lower()
    return any(marker in text for marker in markers)


def classify_exit(reason: str | None, exit_code: int, message: str = "") -> tuple[Reason, bool]:
    """(our reason, retryable) for a container that ended with a non-zero exit code; `message` is
    its termination message (the trainer's one line, or the log tail Kubernetes falls back to)."""
    known = _known(reason)
    if known is not None and known.retry is Retry.RESTART:  # the infrastructure's reason wins
        return known, True
    if reason in NEVER_STARTED_REASONS:  # not a crash: the command never ran
        return NEVER_STARTED_REASONS[reason], False
    if message.startswith(UNSUPPORTED_GPU_PREFIX) or _says(message, UNSUPPORTED_GPU_MARKERS):
        return Reason.UNSUPPORTED_GPU, False
    if _says(message, GPU_FAULT_MARKERS):
        return Reason.GPU_FAULT, True
    if exit_code == EXIT_CODE_PEER_LOST:  # this rank is fine: another one of the gang went away
        return Reason.PEER_LOST, True
    if exit_code >= 128:  # a signal: the NCCL watchdog's SIGABRT after a peer vanished or hung?
        return (Reason.PEER_LOST, True) if _says(message, PEER_LOST_MARKERS) else (Reason.SIGNALED, True)
    return Reason.TRAINER_ERROR, False


def classify_pod(pod: PodView, pending_seconds: float | None, pending_timeout: float) -> FailureInfo | None:
    """The pod's failure, or None while it is healthy (or may still become healthy).

    `pending_seconds`: how long the attempt has been admitted; waits count only past the timeout.
    """
    status_reason = POD_STATUS_REASONS.get(pod.status_reason or "")
    if status_reason:
        return FailureInfo(status_reason, pod.status_message or status_reason, True, pod.name)
    if pod.disruption_reason and (pod.phase == "Failed" or pod.deleting):
        reason = DISRUPTION_REASONS.get(pod.disruption_reason, Reason.EVICTED)
        return FailureInfo(reason, f"pod disrupted: {pod.disruption_reason}", True, pod.name)
    code = pod.terminated_exit_code
    if code is not None and code != 0:
        reason, retryable = classify_exit(pod.terminated_reason, code, pod.terminated_message)
        detail = pod.terminated_message or pod.terminated_reason or "container failed"
        message = (
            f"exit code {code}: {detail}"
            if reason is not Reason.OOM_KILLED
            else f"{Reason.OOM_KILLED.message} (exit code {code})"
        )
        if reason is Reason.GPU_FAULT:
            message = f"node {pod.node_name or '(unknown)'}: {message}"
        return FailureInfo(reason, message, retryable, pod.name, code, pod.node_name)
    waiting = _known(pod.waiting_reason)
    if waiting in HOPELESS_WAITING_REASONS:
        return FailureInfo(waiting, pod.waiting_message or waiting, False, pod.name)
    timed_out = pending_seconds is not None and pending_seconds > pending_timeout
    if waiting in STUCK_WAITING_REASONS and timed_out:
        message = f"{pod.waiting_message or waiting} (waited over {int(pending_timeout)}s)"
        return FailureInfo(waiting, message, False, pod.name)
    if pod.unschedulable_message is not None and timed_out:
        message = f"{pod.unschedulable_message} (unschedulable for over {int(pending_timeout)}s)"
        return FailureInfo(Reason.UNSCHEDULABLE, message, False, pod.name)
    if pod.phase == "Failed":
        return FailureInfo(Reason.POD_FAILED, pod.status_message or Reason.POD_FAILED.message, True, pod.name)
    return None


def classify_job(job: JobView) -> FailureInfo | None:
    """Failures the Job controller reports itself; DeadlineExceeded is the runPolicy deadline."""
    if job.failed_reason == Reason.DEADLINE_EXCEEDED:
        message = job.failed_message or Reason.DEADLINE_EXCEEDED.message
        return FailureInfo(Reason.DEADLINE_EXCEEDED, message, False)
    if job.failed_reason:
        return FailureInfo(Reason.POD_FAILED, job.failed_message or job.failed_reason, True)
    return None


@dataclass(frozen=True)
class CreateFailure:
    """The API server refused to create a child or a pod: `message` is the API's own words."""

    reason: Reason
    message: str
    permanent: bool


def classify_create_failure(message: str, status_code: int | None = None) -> CreateFailure:
    """A refused create, from its message (and HTTP code when the operator made the call). A quota
    frees up when other jobs end; a missing PriorityClass or a pod that violates the namespace's
    Pod Security level never heals by itself."""
    for needle, reason in CREATE_FAILURE_MESSAGES.items():
        if needle in message:
            return CreateFailure(reason, message, reason.retry is Retry.NEVER)
    # 4xx on the operator's own call: the request itself is wrong, repeating it cannot help.
    permanent = status_code is not None and 400 <= status_code < 500
    return CreateFailure(Reason.FAILED_CREATE, message, permanent)


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
        return min(found, key=lambda f: f.reason is Reason.PEER_LOST)
    return classify_job(job) if job is not None else None


def pending_seconds_since(start: str | None, now: datetime) -> float | None:
    if not start:
        return None
    return (now - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
