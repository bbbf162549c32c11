"""Leader election on a coordination.k8s.io Lease, as client-go does it: one active replica.

Why not kopf peering: peering pauses only kopf's own handlers (the operator's clock and
progress loops would keep acting), every replica at the same priority pauses all of them, and a
dead peer is noticed only after its 60 s lifetime. A Lease gives one holder at a time by the
API server's optimistic concurrency (a patch that carries the resourceVersion read is refused
with 409 when another replica wrote first), a takeover within
`LEASE_SECONDS` of the holder's last renewal, and an immediate handover on a clean shutdown.

`lease_step` is the pure decision; `elect` is the loop that carries it out through kube.py and
tells the operator when it starts and stops leading.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .kube import ApiError, Kube

LEASE_SECONDS = 15  # a holder silent this long has lost the lease
RENEW_SECONDS = 2.0  # how often the holder renews and a standby looks
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
logger = logging.getLogger(__name__)

Step = Literal["acquire", "renew", "standby"]


def identity() -> str:
    """Pod name (HOSTNAME in a pod) plus a random part: a restarted pod is a new candidate."""
    return f"{os.environ.get('HOSTNAME', 'recipe-operator')}_{uuid.uuid4().hex[:8]}"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lease_step(spec: dict[str, Any] | None, me: str, now: datetime) -> Step:
    """What `me` may do with a Lease whose spec is `spec` (None: no Lease yet)."""
    spec = spec or {}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return "renew"
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or LEASE_SECONDS
    if not holder or renewed is None or now - renewed > timedelta(seconds=duration):
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
        self.last_renewal: datetime | None = None

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
        )

    async def try_once(self) -> bool:
        """One round: read the Lease, take or renew it if allowed. True while this replica holds it."""
        now = datetime.now(UTC)
        lease = await self.kube.get("coordination.k8s.io/v1", "Lease", self.namespace, self.name)
        spec = (lease or {}).get("spec")
        step = lease_step(spec, self.me, now)
        if step == "standby":
            return False
        body = self._lease(
            lease_spec(spec, self.me, now, step), (lease or {}).get("metadata", {}).get("resourceVersion")
        )
        try:
            if lease is None:
                await self.kube.create(body)
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
                        and (
                            datetime.now(UTC) - self.last_renewal
                            < timedelta(seconds=LEASE_SECONDS - RENEW_SECONDS * 2)
                        )
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
            lease = await self.kube.get("coordination.k8s.io/v1", "Lease", self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.me:
                return
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            await self._patch(self._lease(spec, lease["metadata"].get("resourceVersion")))
        except Exception as exc:
            logger.warning("leader election: could not release the Lease: %s", exc)
