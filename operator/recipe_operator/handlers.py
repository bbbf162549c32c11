"""kopf handlers: thin glue between watch events and the pure state machine.

Every handler ends in `reconcile(namespace, name)`: read the job, its Job and pods, ask
`phases.decide` what to do, write the status, carry out the side effects, post the events.
Pod and Job events reconcile their owner (found by the job-name label). Two operator-wide
loops (not per-object kopf timers, which would cost a task and a finalizer per job) cover
what only time changes (pending timeout, deadlines, TTL) and mirror rank 0's metrics.
Reconciles of one job are serialised by a per-job lock; decide() is level-triggered, so a
repeated or concurrent trigger changes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from recipe_api.contract import LABEL_JOB_NAME, LABEL_MANAGED_BY, MANAGED_BY
from recipe_api.trainer_config import CHECKPOINT_MOUNT_PATH
from recipe_api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    PLURAL,
    TERMINAL_PHASES,
    MetricsSpec,
    RecipeTrainingJobStatus,
)
from recipe_api.validation import InvalidSpecError, parse_job

from . import builders, phases, progress
from .failures import JobView, PodView
from .kube import Kube
from .metrics import OperatorMetrics
from .scrape import fetch_metrics
from .settings import WEBHOOK_CONFIGURATION_NAME, Settings

RTJ = (API_GROUP, API_VERSION, PLURAL)
OWNED = {LABEL_MANAGED_BY: MANAGED_BY}
RECONCILE_INTERVAL_SECONDS = 30.0  # periodic resync of unfinished jobs
CLOCK_TICK_SECONDS = 0.5
CONCURRENT_BACKGROUND_RECONCILES = 8
MAX_STEPS_PER_RECONCILE = 4  # Restarting -> Launching happens in one reconcile when the Job is gone
SETTINGS = Settings.from_env()  # read at import: handler registration depends on it (webhook)
logger = logging.getLogger(__name__)


class Operator:
    """What the handlers share for one `kopf run`, kept in kopf's memo."""

    def __init__(self, settings: Settings, kube: Kube, metrics: OperatorMetrics):
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.locks: collections.defaultdict[tuple[str, str], asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self.phases: dict[tuple[str, str], str] = {}  # every job seen, by its last phase
        self.wake_at: dict[tuple[str, str], float] = {}  # when the clock loop reconciles it again
        self.tasks: list[asyncio.Task[None]] = []

    def remember(self, namespace: str, name: str, phase: str | None, requeue_after: float | None) -> None:
        key = (namespace, name)
        self.metrics.set_phase(namespace, name, phase)
        if phase is None:
            self.phases.pop(key, None)
            self.wake_at.pop(key, None)
            return
        self.phases[key] = phase
        if requeue_after is None and phase not in TERMINAL_PHASES:
            requeue_after = RECONCILE_INTERVAL_SECONDS
        if requeue_after is None:
            self.wake_at.pop(key, None)
        else:
            self.wake_at[key] = time.monotonic() + requeue_after


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = Settings.from_env()
    # The operator posts its own events on transitions; kopf's per-handler chatter stays in logs.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    if config.webhook_enabled:
        settings.admission.server = webhook_server(config)
        settings.admission.managed = WEBHOOK_CONFIGURATION_NAME
    metrics = OperatorMetrics()
    metrics.serve(config.metrics_port)
    operator = Operator(config, Kube.from_environment(), metrics)
    operator.tasks = [
        asyncio.create_task(clock_loop(operator), name="recipe-operator clock"),
        asyncio.create_task(progress_loop(operator), name="recipe-operator progress"),
    ]
    memo.operator = operator


def webhook_server(config: Settings) -> kopf.WebhookServer:
    """kopf's webhook server with a fresh self-signed certificate for the webhook's host
    (see certificates.py for why it is not kopf's own generator)."""
    from .certificates import build_self_signed

    host = config.webhook_host or "localhost"
    cert, key = build_self_signed(host)
    folder = Path(tempfile.mkdtemp(prefix="recipe-operator-webhook-"))
    (folder / "tls.crt").write_bytes(cert)
    (folder / "tls.key").write_bytes(key)
    return kopf.WebhookServer(
        addr="0.0.0.0",
        port=config.webhook_port,
        host=config.webhook_host or None,
        certfile=str(folder / "tls.crt"),
        pkeyfile=str(folder / "tls.key"),
        cadata=cert,
    )


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is not None:
        for task in operator.tasks:
            task.cancel()
        await asyncio.gather(*operator.tasks, return_exceptions=True)
        operator.kube.close()


def rtj_validate(body: kopf.Body, **_: Any) -> None:
    """Admission: the same validation as the create handler; the message names each field path."""
    try:
        parse_job({k: v for k, v in body.items() if k != "status"})
    except InvalidSpecError as exc:
        raise kopf.AdmissionError(str(exc), code=422) from None


if SETTINGS.webhook_enabled:  # kopf refuses admission handlers without a webhook server
    kopf.on.validate(*RTJ, id="validate-spec")(rtj_validate)


@kopf.on.create(*RTJ)
async def rtj_create(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    await reconcile(memo.operator, namespace, name)


@kopf.on.resume(*RTJ)
async def rtj_resume(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    await reconcile(memo.operator, namespace, name)


@kopf.on.update(*RTJ, field="spec")
async def rtj_update(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    await reconcile(memo.operator, namespace, name)


@kopf.on.delete(*RTJ, optional=True)
def rtj_delete(memo: kopf.Memo, namespace: str, name: str, **_: Any) -> None:
    memo.operator.remember(namespace, name, None, None)


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
async def job_event(memo: kopf.Memo, labels: kopf.Labels, namespace: str, **_: Any) -> None:
    if labels.get(LABEL_JOB_NAME):
        await reconcile(memo.operator, namespace, labels[LABEL_JOB_NAME])


@kopf.on.event("", "v1", "pods", labels=OWNED)
async def pod_event(memo: kopf.Memo, labels: kopf.Labels, namespace: str, **_: Any) -> None:
    if labels.get(LABEL_JOB_NAME):
        await reconcile(memo.operator, namespace, labels[LABEL_JOB_NAME])


# ------------------------------------------------------------------ the work


async def observe(kube: Kube, body: dict[str, Any], now: datetime) -> phases.Observed:
    meta = body.get("metadata") or {}
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid")
    status = RecipeTrainingJobStatus.model_validate(body.get("status") or {})
    try:
        job, errors = parse_job({k: v for k, v in body.items() if k != "status"}), ()
    except InvalidSpecError as exc:
        job, errors = None, tuple(exc.errors)
    child, pods = None, ()
    child_body = await kube.get("batch/v1", "Job", namespace, builders.job_name(job) if job else name)
    if child_body is not None:
        child = JobView.from_dict(child_body)
        owners = {ref.get("uid") for ref in (child_body.get("metadata") or {}).get("ownerReferences") or []}
        if uid not in owners:  # a Job left by a deleted namesake: never this job's attempt
            child = JobView(name=child.name, attempt=None, deleting=child.deleting)
        pod_bodies = await kube.list("v1", "Pod", namespace, {LABEL_JOB_NAME: name})
        pods = tuple(PodView.from_dict(p) for p in pod_bodies)
    return phases.Observed(
        job=job,
        status=status,
        now=now,
        errors=errors,
        child=child,
        pods=pods,
        labels=dict(meta.get("labels") or {}),
        created=meta.get("creationTimestamp"),
    )


async def apply(
    operator: Operator, body: dict[str, Any], observed: phases.Observed, d: phases.Decision
) -> None:
    kube, metrics, settings = operator.kube, operator.metrics, operator.settings
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    patch = phases.status_patch(body.get("status") or {}, d.status)
    if patch:
        await kube.patch_status(namespace, name, patch)
    job = observed.job
    for action in d.actions:
        if isinstance(action, phases.EnsureChildren) and job is not None:
            config_map = builders.build_config_map(job, uid)
            children = [builders.build_service(job, uid)]
            pvc = builders.build_checkpoint_pvc(job, uid)
            children += [pvc] if pvc else []
            await asyncio.gather(*(kube.create_if_absent(child) for child in children))
            if not await kube.create_if_absent(config_map):
                # Each attempt runs the spec as it is now: spec edits apply at the next attempt.
                data = {**dict.fromkeys(builders.CONFIG_MAP_KEYS), **config_map["data"]}
                await kube.patch("v1", "ConfigMap", namespace, config_map["metadata"]["name"], {"data": data})
        elif isinstance(action, phases.CreateJob) and job is not None:
            manifest = builders.build_job(
                job, uid, action.attempt, settings.trainer_image, action.active_deadline_seconds
            )
            await kube.create_if_absent(manifest)
        elif isinstance(action, phases.DeleteJob):
            # Foreground: the Job disappears only after its pods, so two gangs never overlap.
            await kube.delete(
                "batch/v1", "Job", namespace, builders.job_name(job) if job else name, "Foreground"
            )
        elif isinstance(action, phases.DeleteOwner):
            await kube.delete(*_rtj_kind(), namespace, name, "Background")
    for event in d.events:
        await kube.post_event(body, event.type, event.reason, event.message)
    for counter in d.counters:
        metrics.count(counter, namespace, d.status.failure.reason)
    if d.seconds_to_running is not None:
        metrics.time_to_running.labels(namespace).observe(d.seconds_to_running)
    operator.remember(namespace, name, d.status.phase, d.requeue_after)


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
                observed = await observe(operator.kube, body, datetime.now(UTC))
                decision = phases.decide(observed)
                await apply(operator, body, observed, decision)
                if decision.transition is None:
                    break
    except Exception:
        operator.metrics.reconcile_errors.labels(namespace).inc()
        raise
    finally:
        operator.metrics.reconcile_duration.labels(namespace).observe(time.perf_counter() - started)


async def clock_loop(operator: Operator) -> None:
    """Reconcile jobs whose time has come (pending timeout, TTL, or the periodic resync)."""
    limit = asyncio.Semaphore(CONCURRENT_BACKGROUND_RECONCILES)

    async def one(namespace: str, name: str) -> None:
        async with limit:
            try:
                await reconcile(operator, namespace, name)
            except Exception as exc:  # the next tick or watch event retries
                logger.warning("periodic reconcile of %s/%s failed: %s", namespace, name, exc)

    while True:
        await asyncio.sleep(CLOCK_TICK_SECONDS)
        now = time.monotonic()
        due = [key for key, at in list(operator.wake_at.items()) if at <= now]
        for key in due:
            operator.wake_at.pop(key, None)
        await asyncio.gather(*(one(*key) for key in due))


async def progress_loop(operator: Operator) -> None:
    """Every progress interval, mirror rank 0's metrics of each Running job (throttled, bounded)."""
    limit = asyncio.Semaphore(CONCURRENT_BACKGROUND_RECONCILES)

    async def one(namespace: str, name: str) -> None:
        async with limit:
            try:
                body = await operator.kube.get_job(namespace, name)
                if body is not None and (body.get("status") or {}).get("phase") == "Running":
                    await mirror_progress(operator, body, namespace, name)
            except Exception as exc:
                logger.warning("progress of %s/%s not mirrored: %s", namespace, name, exc)

    while True:
        await asyncio.sleep(operator.settings.progress_interval_seconds)
        running = [key for key, phase in list(operator.phases.items()) if phase == "Running"]
        await asyncio.gather(*(one(*key) for key in running))


async def mirror_progress(operator: Operator, body: dict[str, Any], namespace: str, name: str) -> None:
    status = body.get("status") or {}
    attempt = str(status.get("attempt", 1))
    pods = await operator.kube.list("v1", "Pod", namespace, {LABEL_JOB_NAME: name})
    rank0 = next(
        (
            view
            for view in map(PodView.from_dict, pods)
            if view.index == 0 and str(view.attempt) == attempt and view.running
        ),
        None,
    )
    if rank0 is None:
        return
    host = operator.settings.metrics_host_override or rank0.pod_ip
    port = ((body.get("spec") or {}).get("metrics") or {}).get("port", MetricsSpec().port)
    if not host:
        return
    text = await fetch_metrics(host, port)
    if text is None:
        return
    try:
        samples = progress.read_samples(text)
    except ValueError:
        return
    new_progress = progress.build_progress(samples, status.get("progress"))
    new_checkpoint = progress.build_last_checkpoint(
        samples, status.get("lastCheckpoint"), CHECKPOINT_MOUNT_PATH
    )
    patch = {}
    if new_progress != (status.get("progress") or {}):
        patch["progress"] = new_progress
    if new_checkpoint != (status.get("lastCheckpoint") or {}):
        patch["lastCheckpoint"] = new_checkpoint
    if patch:
        async with operator.locks[(namespace, name)]:
            await operator.kube.patch_status(namespace, name, patch)
