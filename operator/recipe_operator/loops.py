"""What the leader runs besides kopf's watch handlers: two operator-wide loops, and the resync
on taking over.

Why loops and not per-object kopf timers: a timer costs a task and a finalizer per job, and kopf
would keep per-object state a standby replica must not write. Two loops cover what only time
changes: the clock loop reconciles each job when its time has come (pending timeout, deadlines,
TTL, the periodic resync, a retry after an error), the progress loop mirrors rank 0's /metrics
of each Running job into status.progress. Only the Lease holder (leader.py) runs them: a
standby replica acts on nothing. On taking over, every job is queued at once, because the
events seen while standing by were ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from recipe_api.contract import LABEL_JOB_NAME
from recipe_api.status import RecipeTrainingJobStatus
from recipe_api.trainer_config import job_checkpoint_dir
from recipe_api.v1alpha1 import MetricsSpec

from . import progress
from .failures import PodView
from .kube import status_patch
from .progress import UNPARSABLE, Scrape
from .reconcile import RETRY_SECONDS, reconcile
from .runtime import Operator
from .scrape import fetch_metrics

CLOCK_TICK_SECONDS = 0.5
CONCURRENT_BACKGROUND_RECONCILES = 8
logger = logging.getLogger(__name__)


async def start_leading(operator: Operator) -> None:
    """Start the loops, then resync every job (events seen while standing by were ignored)."""
    operator.leading = True
    operator.tasks = [
        asyncio.create_task(clock_loop(operator), name="recipe-operator clock"),
        asyncio.create_task(progress_loop(operator), name="recipe-operator progress"),
        asyncio.create_task(resync(operator), name="recipe-operator resync"),
    ]


async def resync(operator: Operator) -> None:
    """Queue every job for the clock loop; retried until the API answers."""
    while True:
        try:
            bodies = await operator.kube.list_all_jobs(operator.settings.namespaces)
        except Exception as exc:
            logger.warning("listing RecipeTrainingJobs to resync failed (retrying): %s", exc)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        for body in bodies:
            meta = body.get("metadata") or {}
            operator.wake_at.setdefault((meta["namespace"], meta["name"]), 0.0)  # due now
        return


async def stop_leading(operator: Operator) -> None:
    """Stop everything that acts; a standby keeps only kopf's watches (and the webhook)."""
    operator.leading = False
    tasks, operator.tasks = operator.tasks, []
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    operator.phases.clear()
    operator.wake_at.clear()


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
    host = rank0.pod_ip
    port = ((body.get("spec") or {}).get("metrics") or {}).get("port", MetricsSpec().port)
    if not host:
        return
    scrape = await fetch_metrics(host, port)
    samples = None
    if scrape.text is not None:
        try:  # a worker thread: the text is the tenant's, up to MAX_METRICS_BYTES of it
            samples = await asyncio.to_thread(progress.read_samples, scrape.text)
        except ValueError as exc:
            scrape = Scrape(
                failure=UNPARSABLE, message=f"rank 0's /metrics is not Prometheus text: {str(exc)[:200]}"
            )
    if scrape.failure is not None:
        operator.metrics.scrape_failures.labels(namespace, scrape.failure).inc()
    async with operator.locks[(namespace, name)]:
        # Read again under the lock: conditions are a list, which a merge patch replaces whole.
        fresh = await operator.kube.get_job(namespace, name)
        if fresh is None or (fresh.get("status") or {}).get("phase") != "Running":
            return
        stored = fresh.get("status") or {}
        status = RecipeTrainingJobStatus.model_validate(stored)
        claim = (((fresh.get("spec") or {}).get("checkpoint") or {}).get("volume") or {}).get("claimName")
        checkpoint_dir = job_checkpoint_dir(namespace, name, claim)
        warning = progress.record_scrape(status, samples, scrape, checkpoint_dir, datetime.now(UTC))
        if patch := status_patch(stored, status):
            await operator.kube.patch_status(namespace, name, patch)
        if warning is not None:
            await operator.kube.post_event(fresh, "Warning", progress.SCRAPE_FAILED, warning)
