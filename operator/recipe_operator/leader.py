"""Leader election on a coordination.k8s.io Lease, as client-go does it: one active replica.

Why not kopf peering: peering pauses only kopf's own handlers (the operator's clock and
progress loops would keep acting), every replica at the same priority pauses all of them, and a
dead peer is noticed only after its 60 s lifetime. A Lease gives one holder at a time by the
API server's optimistic concurrency (a patch that carries the resourceVersion read is refused
with 409 when another replica wrote first), a takeover once the holder has been silent for
`LEASE_SECONDS`, and an immediate handover on a clean shutdown.

No clock is compared with another replica's: like client-go, a standby remembers the Lease record
it last saw and when, on its own monotonic clock, it saw it change; the holder is silent once
that record has stayed the same for leaseDurationSeconds. The renewTime written is for people
(kubectl) only. Every election call to the API times out after `API_TIMEOUT_SECONDS`, well inside
the lease, so a hung connection cannot keep a holder that has stopped renewing in charge.

`lease_step` is the pure decision; `elect` is the loop that carries it out through kube.py and
tells the operator when it starts and stops leading.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .kube import ApiError, Kube

LEASE_SECONDS = 15  # a holder silent this long has lost the lease
RENEW_SECONDS = 2.0  # how often the holder renews and a standby looks
API_TIMEOUT_SECONDS = 5.0  # one election call; with the renewal period, well inside the lease
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
logger = logging.getLogger(__name__)

Step = Literal["acquire", "renew", "standby"]


def identity() -> str:
    """Pod name (HOSTNAME in a pod) plus a random part: a restarted pod is a new candidate."""
    return f"{os.environ.get('HOSTNAME', 'recipe-operator')}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Sighting:
    """The Lease record as this replica last saw it change, and when, on its monotonic clock."""

    record: tuple[Any, ...]
    since: float


def record_of(spec: dict[str, Any] | None) -> tuple[Any, ...]:
    spec = spec or {}
    fields = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions")
    return tuple(spec.get(f) for f in fields)


def sight(previous: Sighting | None, spec: dict[str, Any] | None, now: float) -> Sighting:
    """Keep the earlier sighting while the record is unchanged; a changed record starts a new one."""
    record = record_of(spec)
    if previous is not None and previous.record == record:
        return previous
    return Sighting(record, now)


def lease_step(spec: dict[str, Any] | None, me: str, seen: Sighting, now: float) -> Step:
    """What `me` may do with a Lease whose spec is `spec` (None: no Lease yet), having seen its
    record unchanged since `seen.since` (`now` and `since` on this replica's monotonic clock)."""
    spec = spec or {}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return "renew"
    duration = spec.get("leaseDurationSeconds") or LEASE_SECONDS
    if not holder or now - seen.since >= duration:
        return "acquire"
    return "standby"


def lease_spec(previous: dict[str, Any] | None, me: str, now: datetime, step: Step) -> dict[str, Any]:
    """The Lease spec after `step` (client-go's LeaderElectionRecord fields)."""
    previous = previous or {}
    stamp = now.strftime(MICRO)
    if step == "renew":
        return {**previous, "renewTime": stamp}
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": LEASE_SECONDS,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(previous.get("leaseTransitions") or 0)
        + (1 if previous.get("holderIdentity") else 0),
    }


class Elector:
    """Campaigns for one Lease; `on_start`/`on_stop` are awaited when leadership begins/ends."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        on_start: Callable[[], Awaitable[None]],
        on_stop: Callable[[], Awaitable[None]],
        me: str | None = None,
    ):
        self.kube, self.namespace, self.name = kube, namespace, name
        self.on_start, self.on_stop = on_start, on_stop
        self.me = me or identity()
        self.leading = False
        self.last_renewal: float | None = None  # monotonic
        self.seen: Sighting | None = None

    def _lease(self, spec: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    async def _patch(self, body: dict[str, Any]) -> None:
        await self.kube.patch(
            body["apiVersion"],
            body["kind"],
            self.namespace,
            self.name,
            {"metadata": body["metadata"], "spec": body["spec"]},
            timeout=API_TIMEOUT_SECONDS,
        )

    async def _get(self) -> dict[str, Any] | None:
        return await self.kube.get(
            "coordination.k8s.io/v1", "Lease", self.namespace, self.name, timeout=API_TIMEOUT_SECONDS
        )

    async def try_once(self) -> bool:
        """One round: read the Lease, take or renew it if allowed. True while this replica holds it."""
        lease = await self._get()
        now = time.monotonic()
        spec = (lease or {}).get("spec")
        self.seen = sight(self.seen, spec, now)
        step = lease_step(spec, self.me, self.seen, now)
        if step == "standby":
            return False
        body = self._lease(
            lease_spec(spec, self.me, datetime.now(UTC), step),
            (lease or {}).get("metadata", {}).get("resourceVersion"),
        )
        try:
            if lease is None:
                await self.kube.create(body, timeout=API_TIMEOUT_SECONDS)
            else:
                await self._patch(body)
        except ApiError as exc:
            if exc.status == 409:  # another replica wrote first: it won this round
                return False
            raise
        self.last_renewal = now
        return True

    async def run(self) -> None:
        """Campaign until cancelled; on cancel a holder releases the Lease for a fast handover."""
        try:
            while True:
                try:
                    held = await self.try_once()
                except Exception as exc:  # the API is unreachable: keep leading only within the lease
                    logger.warning("leader election: %s", exc)
                    held = (
                        self.leading
                        and self.last_renewal is not None
                        and time.monotonic() - self.last_renewal < LEASE_SECONDS - RENEW_SECONDS * 2
                    )
                if held and not self.leading:
                    self.leading = True
                    logger.info(
                        "leader election: %s now leads (Lease %s/%s)", self.me, self.namespace, self.name
                    )
                    await self.on_start()
                elif not held and self.leading:
                    self.leading = False
                    logger.warning("leader election: %s lost the Lease; standing by", self.me)
                    await self.on_stop()
                await asyncio.sleep(RENEW_SECONDS)
        finally:
            if self.leading:
                self.leading = False
                await self.on_stop()
                await asyncio.shield(self.release())

    async def release(self) -> None:
        """Give the Lease up now (empty holder, expired) so a standby takes over at once."""
        try:
            lease = await self._get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.me:
                return
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            await self._patch(self._lease(spec, lease["metadata"].get("resourceVersion")))
        except Exception as exc:
            logger.warning("leader election: could not release the Lease: %s", exc)
