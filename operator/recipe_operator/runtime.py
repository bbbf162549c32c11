"""What one `kopf run` of the operator shares: settings, API client, metrics, per-job locks, and
the schedule of the next reconcile of each job.

Why a module of its own: the reconcile engine (reconcile.py), the leader's loops (loops.py) and
the kopf handlers (handlers.py) all read and write this one object, kept in kopf's memo; none of
them owns it, and none of them should have to import the others to reach it.
"""

from __future__ import annotations

import asyncio
import collections
import time

from recipe_api.status import TERMINAL_PHASES

from .kube import Kube
from .leader import Elector
from .metrics import OperatorMetrics
from .settings import Settings

RECONCILE_INTERVAL_SECONDS = 30.0  # periodic resync of unfinished jobs


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

    def wake_soon(self, namespace: str, name: str) -> None:
        """Reconcile the job at the clock loop's next tick. Pod events come in bursts (N pods of a
        gang start, each changes several times): reconciling on each listed N pods N times; now a
        burst within one tick costs one reconcile (issue 23, finding 7)."""
        key, now = (namespace, name), time.monotonic()
        self.wake_at[key] = min(self.wake_at.get(key, now), now)
