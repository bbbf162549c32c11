"""kopf handlers: thin glue between kopf's events and the operator's parts.

Every watch event ends in `reconcile.reconcile(namespace, name)` (reconcile.py), which reads the
job, its Job and pods and acts; pod and Job events reconcile their owner (found by the job-name
label). What only time changes (pending timeout, deadlines, TTL) and the progress mirror are the
leader's loops (loops.py); the admission check and its server are webhook.py's.

All handlers are kopf *event* handlers: kopf keeps no per-object state (no annotations, no
finalizers), so a standby replica writes nothing. With leader election (leader.py) only the
Lease holder reconciles and runs the loops; on taking over it resyncs every job.
Pod and Job watches carry a server-side label selector (settings.watching.label_selectors):
kopf's `labels=` filter alone would stream every pod of the cluster to filter it here.

The settings are read once per process, at startup: `recipe-operator` (main.py) hands over the
ones it read and checked in kopf's memo; `kopf run -m recipe_operator.handlers` reads them here.
The admission handler is registered then too, and only with a webhook server (kopf refuses
admission handlers without one; it starts its admission server after the startup handlers).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import kopf
from recipe_api.contract import LABEL_JOB_NAME, LABEL_MANAGED_BY, MANAGED_BY
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

from . import loops, webhook
from .kube import Kube
from .leader import Elector
from .metrics import OperatorMetrics
from .reconcile import reconcile
from .runtime import Operator
from .settings import Settings
from .webhook_certs import CertificateKeeper

RTJ = (API_GROUP, API_VERSION, PLURAL)
OWNED = {LABEL_MANAGED_BY: MANAGED_BY}
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
# The Job controller's only word on refused pods (quota, PriorityClass, Pod Security).
FAILED_CREATE_SELECTOR = "involvedObject.kind=Job,reason=FailedCreate"
WATCH_SERVER_TIMEOUT_SECONDS = 300  # the API server ends each watch after this...
WATCH_CLIENT_TIMEOUT_SECONDS = 330  # ...and the client gives up on a silent one after this


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


@functools.cache  # kopf's registry is process-wide: register once, however many runs
def register_admission() -> None:
    kopf.on.validate(*RTJ, id="validate-spec", operations=["CREATE", "UPDATE"])(webhook.rtj_validate)


@kopf.on.startup()
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.get("settings") or Settings.from_env()
    # The operator posts its own events on transitions; kopf's per-handler chatter stays in logs.
    settings.posting.level = logging.WARNING
    configure_watching(settings)
    kube = Kube.from_environment()
    if config.webhook_enabled:
        if config.webhook_cert_secret:  # the operator's own certificate: its files exist before kopf serves
            keeper = CertificateKeeper(kube, config)
            await keeper.first_sync()
            memo.cert_keeper = asyncio.create_task(keeper.run(), name="recipe-operator webhook certificate")
        settings.admission.server = webhook.webhook_server(config)
        register_admission()
    metrics = OperatorMetrics()
    metrics.serve(config.metrics_port)
    operator = Operator(config, kube, metrics)
    memo.operator = operator
    if config.leader_election:
        operator.elector = Elector(
            operator.kube,
            config.lease_namespace(),
            config.leader_election_lease,
            functools.partial(loops.start_leading, operator),
            functools.partial(loops.stop_leading, operator),
        )
        operator.election = asyncio.create_task(operator.elector.run(), name="recipe-operator election")
    else:
        await loops.start_leading(operator)


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    keeper: asyncio.Task | None = getattr(memo, "cert_keeper", None)
    if keeper is not None:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is not None:
        if operator.election is not None:
            operator.election.cancel()  # releases the Lease for a fast handover
            await asyncio.gather(operator.election, return_exceptions=True)
        await loops.stop_leading(operator)
        operator.kube.close()


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
    """Coalesced (Operator.wake_soon): a gang's pod events come in bursts."""
    if labels.get(LABEL_JOB_NAME) and memo.operator.leading:
        memo.operator.wake_soon(namespace, labels[LABEL_JOB_NAME])
