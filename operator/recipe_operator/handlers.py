"""kopf handlers: thin glue between watch events and the pure state machine.

Every handler ends in `reconcile(namespace, name)`: read the job, its Job and pods, ask
`phases.decide` what to do, write the status, carry out the side effects, post the events.
Pod and Job events reconcile their owner (found by the job-name label). Two operator-wide
loops (not per-object kopf timers, which would cost a task and a finalizer per job) cover
what only time changes (pending timeout, deadlines, TTL) and mirror rank 0's metrics.
Reconciles of one job are serialised by a per-job lock; decide() is level-triggered, so a
repeated or concurrent trigger changes nothing.

All handlers are kopf *event* handlers: kopf keeps no per-object state (no annotations, no
finalizers), so a standby replica writes nothing. With leader election (leader.py) only the
Lease holder reconciles and runs the loops; on taking over it resyncs every job.
Pod and Job watches carry a server-side label selector (settings.watching.label_selectors):
kopf's `labels=` filter alone would stream every pod of the cluster to filter it here.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from datetime import UTC, datetime
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
from .kube import ApiError, Kube, api_message, owned_by
from .leader import Elector
from .metrics import OperatorMetrics
from .scrape import fetch_metrics
from .settings import Settings

RTJ = (API_GROUP, API_VERSION, PLURAL)
OWNED = {LABEL_MANAGED_BY: MANAGED_BY}
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
# The Job controller's only word on refused pods (quota, PriorityClass, Pod Security).
FAILED_CREATE_SELECTOR = "involvedObject.kind=Job,reason=FailedCreate"
RECONCILE_INTERVAL_SECONDS = 30.0  # periodic resync of unfinished jobs
RETRY_SECONDS = 10.0  # a reconcile that raised is tried again this much later
WATCH_SERVER_TIMEOUT_SECONDS = 300  # the API server ends each watch after this...
WATCH_CLIENT_TIMEOUT_SECONDS = 330  # ...and the client gives up on a silent one after this
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
        self.tasks: list[asyncio.Task[None]] = []  # the leader's loops
        self.elector: Elector | None = None
        self.election: asyncio.Task[None] | None = None
        self.leading = False

    async def start_leading(self) -> None:
        """Start the loops, then resync every job (events seen while standing by were ignored)."""
        self.leading = True
        self.tasks = [
            asyncio.create_task(clock_loop(self), name="recipe-operator clock"),
            asyncio.create_task(progress_loop(self), name="recipe-operator progress"),
            asyncio.create_task(self.resync(), name="recipe-operator resync"),
        ]

    async def resync(self) -> None:
        """Queue every job for the clock loop; retried until the API answers."""
        while True:
            try:
                bodies = await self.kube.list_all_jobs(self.settings.namespaces)
            except Exception as exc:
                logger.warning("listing RecipeTrainingJobs to resync failed (retrying): %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for body in bodies:
                meta = body.get("metadata") or {}
                self.wake_at.setdefault((meta["namespace"], meta["name"]), 0.0)  # due now
            return

    async def stop_leading(self) -> None:
        """Stop everything that acts; a standby keeps only kopf's watches (and the webhook)."""
        self.leading = False
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.phases.clear()
        self.wake_at.clear()

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


def configure_watching(settings: kopf.OperatorSettings) -> None:
    """Server-side label selectors on the child watches, and timeouts on every watch: the API
    server closes a watch after WATCH_SERVER_TIMEOUT_SECONDS, the client drops one that went
    silent (a half-open connection) after WATCH_CLIENT_TIMEOUT_SECONDS; kopf then re-lists."""
    settings.watching.label_selectors["batch", "v1", "jobs"] = OWNED_SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = OWNED_SELECTOR
    settings.watching.field_selectors["", "v1", "events"] = FAILED_CREATE_SELECTOR
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    settings.watching.connect_timeout = 10


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = Settings.from_env()
    # The operator posts its own events on transitions; kopf's per-handler chatter stays in logs.
    settings.posting.level = logging.WARNING
    configure_watching(settings)
    if config.webhook_enabled:
        settings.admission.server = webhook_server(config)
    metrics = OperatorMetrics()
    metrics.serve(config.metrics_port)
    operator = Operator(config, Kube.from_environment(), metrics)
    memo.operator = operator
    if config.leader_election:
        operator.elector = Elector(
            operator.kube,
            config.lease_namespace(),
            config.leader_election_lease,
            operator.start_leading,
            operator.stop_leading,
        )
        operator.election = asyncio.create_task(operator.elector.run(), name="recipe-operator election")
    else:
        await operator.start_leading()


def webhook_server(config: Settings) -> kopf.WebhookServer:
    """kopf's webhook server with the chart's certificate: the chart (a generated Secret or
    cert-manager) owns both the certificate and the ValidatingWebhookConfiguration's caBundle,
    so every replica serves the same certificate and nothing is registered at runtime."""
    return kopf.WebhookServer(
        addr=config.webhook_address,
        port=config.webhook_port,
        certfile=config.webhook_cert_file,
        pkeyfile=config.webhook_key_file,
    )


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is not None:
        if operator.election is not None:
            operator.election.cancel()  # releases the Lease for a fast handover
            await asyncio.gather(operator.election, return_exceptions=True)
        await operator.stop_leading()
        operator.kube.close()


def rtj_validate(
    body: kopf.Body, old: kopf.Body | None = None, operation: str | None = None, **_: Any
) -> None:
    """Admission on CREATE and UPDATE (never DELETE: a job must stay deletable whatever its spec).
    An UPDATE that leaves the spec alone (labels, annotations) is admitted even when the stored
    spec no longer validates; the message names each field path."""
    if operation == "DELETE":  # kopf calls the handler for any review it receives
        return
    if (
        operation == "UPDATE"
        and old is not None
        and dict(old.get("spec") or {}) == dict(body.get("spec") or {})
    ):
        return
    try:
        parse_job({k: v for k, v in body.items() if k != "status"})
    except InvalidSpecError as exc:
        raise kopf.AdmissionError(str(exc), code=422) from None


if SETTINGS.webhook_enabled:  # kopf refuses admission handlers without a webhook server
    kopf.on.validate(*RTJ, id="validate-spec", operations=["CREATE", "UPDATE"])(rtj_validate)


@kopf.on.event(*RTJ)
async def rtj_event(memo: kopf.Memo, event: dict, namespace: str, name: str, **_: Any) -> None:
    operator: Operator = memo.operator
    if event.get("type") == "DELETED":
        operator.remember(namespace, name, None, None)
    elif operator.leading:
        await reconcile(operator, namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
async def job_event(memo: kopf.Memo, labels: kopf.Labels, namespace: str, **_: Any) -> None:
    if labels.get(LABEL_JOB_NAME) and memo.operator.leading:
        await reconcile(memo.operator, namespace, labels[LABEL_JOB_NAME])


@kopf.on.event("", "v1", "events")
async def failed_create_event(memo: kopf.Memo, body: kopf.Body, namespace: str, **_: Any) -> None:
    """A Job could not create its pods: reconcile the job of that name (builders.job_name) now
    instead of at the pending timeout. The watch is narrowed server-side (configure_watching)."""
    involved = body.get("involvedObject") or {}
    if body.get("reason") == "FailedCreate" and involved.get("kind") == "Job" and memo.operator.leading:
        await reconcile(memo.operator, namespace, involved.get("name", ""))


@kopf.on.event("", "v1", "pods", labels=OWNED)
async def pod_event(memo: kopf.Memo, labels: kopf.Labels, namespace: str, **_: Any) -> None:
    if labels.get(LABEL_JOB_NAME) and memo.operator.leading:
        await reconcile(memo.operator, namespace, labels[LABEL_JOB_NAME])


# ------------------------------------------------------------------ the work


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


async def observe(kube: Kube, body: dict[str, Any], now: datetime, settings: Settings) -> phases.Observed:
    meta = body.get("metadata") or {}
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    status = RecipeTrainingJobStatus.model_validate(body.get("status") or {})
    try:
        job, errors = parse_job({k: v for k, v in body.items() if k != "status"}), ()
    except InvalidSpecError as exc:
        job, errors = None, tuple(exc.errors)
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
) -> phases.CreateFailure | None:
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
    return phases.classify_create_failure(newest.get("message") or "pods cannot be created")


class ChildRefused(Exception):
    """The API refused a child (4xx) or a same-named object is not this job's."""

    def __init__(self, failure: phases.CreateFailure):
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
            raise ChildRefused(phases.classify_create_failure(message, exc.status)) from None
        raise
    meta = obj["metadata"]
    existing = await kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is None:
        raise RuntimeError(f"{describe(obj)} vanished after a create conflict; trying again")
    existing.setdefault("kind", obj["kind"])
    if owned_by(existing, uid):
        return existing
    if left_by_namesake(existing, meta["name"]):
        raise RuntimeError(f"{describe(obj)} still belongs to a deleted namesake; waiting for its removal")
    raise ChildRefused(phases.CreateFailure("ConflictingObject", not_ours(existing), True))


async def carry_out(
    operator: Operator, observed: phases.Observed, d: phases.Decision, namespace: str, name: str, uid: str
) -> None:
    kube, settings, job = operator.kube, operator.settings, observed.job
    child_uid = observed.child.uid if observed.child else None
    for action in d.actions:
        if isinstance(action, phases.EnsureChildren) and job is not None:
            config_map = builders.build_config_map(job, uid)
            children = [builders.build_service(job, uid)]
            pvc = builders.build_checkpoint_pvc(job, uid)
            children += [pvc] if pvc else []
            for child in children:
                await ensure_child(kube, child, uid)
            if await ensure_child(kube, config_map, uid) is not None:
                # Each attempt runs the spec as it is now: spec edits apply at the next attempt.
                data = {**dict.fromkeys(builders.CONFIG_MAP_KEYS), **config_map["data"]}
                await kube.patch("v1", "ConfigMap", namespace, config_map["metadata"]["name"], {"data": data})
        elif isinstance(action, phases.CreateJob) and job is not None:
            manifest = builders.build_job(
                job, uid, action.attempt, settings.trainer_image, action.active_deadline_seconds
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
    patch = phases.status_patch(body.get("status") or {}, d.status)
    if patch:
        await kube.patch_status(namespace, name, patch)
    try:
        await carry_out(operator, observed, d, namespace, name, uid)
    except ChildRefused as refused:
        for event in d.events:
            await kube.post_event(body, event.type, event.reason, event.message)
        written = d.status.to_manifest()
        d = phases.fail_launch(dataclasses.replace(observed, status=d.status), refused.failure)
        if patch := phases.status_patch(written, d.status):
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
