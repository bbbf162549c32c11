"""The reconcile engine: read a job, its Job and pods; ask `phases.decide`; write the status; carry
out the actions; post the events.

Why a module of its own: this is the one place where the pure pieces (builders, phases,
failures) meet the API (kube.py). kopf's handlers (handlers.py) and the leader's loops
(loops.py) only decide *when* to call `reconcile`; what it does does not depend on who called.
Reconciles of one job are serialised by a per-job lock; decide() is level-triggered, so a
repeated or concurrent trigger changes nothing. A refused child (a 4xx, or a same-named object
that is not this job's) ends the job in Failed at once instead of leaving it Launching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from recipe_api.contract import LABEL_JOB_NAME
from recipe_api.status import RecipeTrainingJobStatus
from recipe_api.v1alpha1 import API_GROUP, API_VERSION
from recipe_api.validation import InvalidSpecError, parse_job

from . import builders, phases
from .failures import CreateFailure, JobView, PodView, Reason, classify_create_failure
from .kube import ApiError, Kube, api_message, owned_by, status_patch
from .runtime import Operator
from .settings import Settings

RETRY_SECONDS = 10.0  # a reconcile that raised is tried again this much later
MAX_STEPS_PER_RECONCILE = 4  # Restarting -> Launching happens in one reconcile when the Job is gone


def left_by_namesake(obj: dict[str, Any], name: str) -> bool:
    """Owned by a deleted RecipeTrainingJob of the same name: the garbage collector removes it."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("kind") == "RecipeTrainingJob" and ref.get("name") == name for ref in refs)


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', 'object')} {meta.get('namespace')}/{meta.get('name')}"


def not_ours(obj: dict[str, Any]) -> str:
    owners = [
        f"{r.get('kind')} {r.get('name')}" for r in (obj.get("metadata") or {}).get("ownerReferences") or []
    ]
    whose = f"owned by {', '.join(owners)}" if owners else "without an owner"
    return f"{describe(obj)} already exists, {whose}, not by this RecipeTrainingJob"


async def validate_off_loop(body: dict[str, Any], settings: Settings) -> tuple[Any, tuple[Any, ...]]:
    """parse_job in a worker thread: validation is linear in the object's size (issue 23), but an
    object near etcd's limit still takes a while, and the event loop also serves /healthz, the
    watches and every other job. (The webhook's check is a plain function: kopf runs it in its
    executor.)"""
    try:
        manifest = {k: v for k, v in body.items() if k != "status"}
        return await asyncio.to_thread(parse_job, manifest, settings.policy), ()
    except InvalidSpecError as exc:
        return None, tuple(exc.errors)


async def observe(kube: Kube, body: dict[str, Any], now: datetime, settings: Settings) -> phases.Observed:
    meta = body.get("metadata") or {}
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    status = RecipeTrainingJobStatus.model_validate(body.get("status") or {})
    job, errors = await validate_off_loop(body, settings)
    child, pods, conflict, create_failure = None, (), None, None
    child_body = await kube.get("batch/v1", "Job", namespace, builders.job_name(job) if job else name)
    if child_body is not None:
        child_body.setdefault("kind", "Job")
        child = JobView.from_dict(child_body)
        if not owned_by(child_body, uid):
            if left_by_namesake(child_body, name):  # never this job's attempt; deleted by uid
                child = JobView(
                    name=child.name,
                    attempt=None,
                    deleting=child.deleting,
                    uid=child.uid,
                    deletion_timestamp=child.deletion_timestamp,
                )
            else:  # someone else's Job: never adopted, never deleted
                child, conflict = None, not_ours(child_body)
    if child is not None:
        pod_bodies = await kube.list("v1", "Pod", namespace, {LABEL_JOB_NAME: name})
        pods = tuple(PodView.from_dict(p) for p in pod_bodies)
        create_failure = await _pod_create_failure(kube, namespace, job, status, child, pods)
    return phases.Observed(
        job=job,
        status=status,
        now=now,
        errors=errors,
        child=child,
        pods=pods,
        labels=dict(meta.get("labels") or {}),
        created=meta.get("creationTimestamp"),
        conflict=conflict,
        create_failure=create_failure,
        termination_timeout=settings.termination_timeout_seconds,
    )


async def _pod_create_failure(
    kube: Kube,
    namespace: str,
    job: Any,
    status: RecipeTrainingJobStatus,
    child: JobView,
    pods: tuple[PodView, ...],
) -> CreateFailure | None:
    """The Job controller reports refused pods (quota, PriorityClass, Pod Security) only as
    FailedCreate events on the Job: read them while the attempt is short of pods."""
    if job is None or child.uid is None or child.deleting or child.complete or child.suspended:
        return None
    if child.attempt != status.attempt or status.phase not in ("Pending", "Launching"):
        return None
    if sum(1 for p in pods if p.attempt == child.attempt) >= job.spec.resources.nodes:
        return None
    events = await kube.list_events(namespace, child.uid, "FailedCreate")
    if not events:
        return None
    newest = max(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return classify_create_failure(newest.get("message") or "pods cannot be created")


class ChildRefused(Exception):
    """The API refused a child (4xx) or a same-named object is not this job's."""

    def __init__(self, failure: CreateFailure):
        super().__init__(failure.message)
        self.failure = failure


async def ensure_child(kube: Kube, obj: dict[str, Any], uid: str) -> dict[str, Any] | None:
    """Create `obj`; when one of that name exists, return it if this job owns it. Raises
    ChildRefused for a 4xx or an object owned by someone else (never adopted, never changed)."""
    try:
        if await kube.create_if_absent(obj):
            return None
    except ApiError as exc:
        if 400 <= exc.status < 500 and exc.status != 429:
            message = f"creating {describe(obj)}: {api_message(exc)}"
            raise ChildRefused(classify_create_failure(message, exc.status)) from None
        raise
    meta = obj["metadata"]
    existing = await kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is None:
        raise RuntimeError(f"{describe(obj)} vanished after a create conflict; trying again")
    existing.setdefault("kind", obj["kind"])
    if owned_by(existing, uid) or builders.kept_for(existing, meta["labels"].get(LABEL_JOB_NAME, "")):
        return existing
    if left_by_namesake(existing, meta["name"]):
        raise RuntimeError(f"{describe(obj)} still belongs to a deleted namesake; waiting for its removal")
    raise ChildRefused(CreateFailure(Reason.CONFLICTING_OBJECT, not_ours(existing), True))


async def check_volumes(kube: Kube, job: Any, namespace: str, existing_pvc: dict[str, Any] | None) -> None:
    """Before an attempt starts: can every node of the gang mount the checkpoint and dataset
    claims? (`builders.pvc.volume_mismatch`). A claim created just now was built for this spec; one
    that existed (created for an earlier, smaller gang, or the user's own) is read. Raises
    ChildRefused, so the job fails with the reason and the claim, with its files, stays."""
    claims: list[tuple[str, dict[str, Any] | None]] = [("checkpoint", existing_pvc)]
    if job.spec.checkpoint.volume.claim_name:
        claims[0] = (
            "checkpoint",
            await kube.get("v1", "PersistentVolumeClaim", namespace, job.spec.checkpoint.volume.claim_name),
        )
    if job.spec.dataset.volume is not None:
        claims.append(
            (
                "dataset",
                await kube.get("v1", "PersistentVolumeClaim", namespace, job.spec.dataset.volume.claim_name),
            )
        )
    for what, claim in claims:
        problem = builders.volume_mismatch(job, claim, what) if claim is not None else None
        if problem:
            raise ChildRefused(CreateFailure(Reason.VOLUME_ACCESS_MODE, problem, True))


async def carry_out(
    operator: Operator, observed: phases.Observed, d: phases.Decision, namespace: str, name: str, uid: str
) -> None:
    kube, settings, job = operator.kube, operator.settings, observed.job
    child_uid = observed.child.uid if observed.child else None
    for action in d.actions:
        if isinstance(action, phases.EnsureChildren) and job is not None:
            config_map = builders.build_config_map(job, uid)
            await ensure_child(kube, builders.build_service(job, uid), uid)
            pvc = builders.build_checkpoint_pvc(job, uid)
            existing_pvc = await ensure_child(kube, pvc, uid) if pvc else None
            await check_volumes(kube, job, namespace, existing_pvc)
            if await ensure_child(kube, config_map, uid) is not None:
                # Each attempt runs the spec as it is now: spec edits apply at the next attempt.
                data = {**dict.fromkeys(builders.CONFIG_MAP_KEYS), **config_map["data"]}
                await kube.patch("v1", "ConfigMap", namespace, config_map["metadata"]["name"], {"data": data})
        elif isinstance(action, phases.CreateJob) and job is not None:
            manifest = builders.build_job(
                job,
                uid,
                action.attempt,
                settings.trainer_image,
                action.active_deadline_seconds,
                action.avoid_nodes,
            )
            await ensure_child(kube, manifest, uid)
        elif isinstance(action, phases.DeleteJob):
            # Foreground: the Job disappears only after its pods, so two gangs never overlap. The
            # uid precondition deletes only the Job observed, never a namesake created since.
            job_name = builders.job_name(job) if job else name
            await kube.delete("batch/v1", "Job", namespace, job_name, "Foreground", uid=child_uid)
        elif isinstance(action, phases.ForceDeletePods):
            for pod in observed.pods:
                if pod.attempt == action.attempt:
                    await kube.delete("v1", "Pod", namespace, pod.name, "Background", grace_period_seconds=0)
        elif isinstance(action, phases.OrphanJob):
            job_name = builders.job_name(job) if job else name
            await kube.delete("batch/v1", "Job", namespace, job_name, "Orphan", uid=child_uid)
        elif isinstance(action, phases.DeleteOwner):
            await kube.delete(*_rtj_kind(), namespace, name, "Background", uid=uid or None)


async def apply(
    operator: Operator, body: dict[str, Any], observed: phases.Observed, d: phases.Decision
) -> phases.Decision:
    """Write the status, then carry out the actions; a refused child turns the decision into
    Failed (written at once) so the job never stays Launching. Returns the decision applied."""
    kube, metrics = operator.kube, operator.metrics
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    patch = status_patch(body.get("status") or {}, d.status)
    if patch:
        await kube.patch_status(namespace, name, patch)
    try:
        await carry_out(operator, observed, d, namespace, name, uid)
    except ChildRefused as refused:
        for event in d.events:
            await kube.post_event(body, event.type, event.reason, event.message)
        written = d.status.to_manifest()
        d = phases.fail_launch(dataclasses.replace(observed, status=d.status), refused.failure)
        if patch := status_patch(written, d.status):
            await kube.patch_status(namespace, name, patch)
    for event in d.events:
        await kube.post_event(body, event.type, event.reason, event.message)
    for counter in d.counters:
        metrics.count(counter, namespace, d.status.failure.reason)
    if d.seconds_to_running is not None:
        metrics.time_to_running.labels(namespace).observe(d.seconds_to_running)
    operator.remember(namespace, name, d.status.phase, d.requeue_after)
    return d


def _rtj_kind() -> tuple[str, str]:
    return f"{API_GROUP}/{API_VERSION}", "RecipeTrainingJob"


async def reconcile(operator: Operator, namespace: str, name: str) -> None:
    """Bring one job a step (or a few) closer to what its spec and its pods say."""
    started = time.perf_counter()
    try:
        async with operator.locks[(namespace, name)]:
            for _ in range(MAX_STEPS_PER_RECONCILE):
                body = await operator.kube.get_job(namespace, name)
                if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                    operator.remember(namespace, name, None, None)
                    return
                observed = await observe(operator.kube, body, datetime.now(UTC), operator.settings)
                decision = await apply(operator, body, observed, phases.decide(observed))
                if decision.transition is None:
                    break
    except Exception:
        operator.metrics.reconcile_errors.labels(namespace).inc()
        if operator.leading:  # watch events are not retried by kopf: the clock loop tries again
            operator.wake_at[(namespace, name)] = time.monotonic() + RETRY_SECONDS
        raise
    finally:
        operator.metrics.reconcile_duration.labels(namespace).observe(time.perf_counter() - started)
