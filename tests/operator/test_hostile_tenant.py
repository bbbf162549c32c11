"""Issue 23: what one tenant's job (or its trainer image) can do to the operator that serves every
tenant. Each test attacks the way the issue describes."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.server
import json
import threading
import time
from datetime import UTC, datetime

import kopf
import local_http
import pytest
from aiohttp import web
from kmock_cluster import wait_for
from recipe_api import InvalidSpecError, parse_job
from recipe_api.contract import LABEL_JOB_NAME
from recipe_api.status import MESSAGE_MAX_CHARS, STATUS_MAX_BYTES, RecipeTrainingJobStatus
from recipe_api.v1alpha1 import MAX_NODES
from recipe_operator import handlers, phases, reconcile
from recipe_operator.kube import LIST_MAX_PAGES, LIST_PAGE_SIZE, Kube
from recipe_operator.metrics import OperatorMetrics, exported_metric_names
from recipe_operator.progress import COMPRESSED, SCRAPE_FAILED, TOO_LARGE, UNREACHABLE, Scrape, record_scrape
from recipe_operator.runtime import Operator
from recipe_operator.scrape import MAX_METRICS_BYTES, fetch_metrics
from recipe_operator.settings import Settings
from test_operator_behaviour import NS, operator, phase_is, rtj, start_pods, status  # noqa: F401 (operator: a fixture)

BODY = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}},
}


def test_reconcile_validates_the_spec_off_the_event_loop(monkeypatch):
    """A validation that blocks must leave the event loop free (it also serves /healthz and every
    other job): the parse waits for a callback only the running loop can make."""
    loop_ran = threading.Event()

    def blocking_parse(manifest, policy):
        assert loop_ran.wait(timeout=60), "the spec was validated on the event loop, which stood still"
        return manifest["metadata"]["name"]

    monkeypatch.setattr(reconcile, "parse_job", blocking_parse)

    async def scenario():
        asyncio.get_running_loop().call_soon(loop_ran.set)
        return await reconcile.validate_off_loop(BODY, Settings())

    assert asyncio.run(scenario()) == ("flan", ())


# ---------------------------------------------------------------- finding 2: rank 0's /metrics

GOOD_TEXT = "# TYPE recipe_trainer_step gauge\nrecipe_trainer_step 7\n"


@contextlib.asynccontextmanager
async def serving(handler):
    """An HTTP server on 127.0.0.1 answering /metrics with `handler`; yields its port."""
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


def scrape_of(handler) -> Scrape:
    async def scenario():
        async with serving(handler) as port:
            return await fetch_metrics("127.0.0.1", port)

    return asyncio.run(scenario())


def test_a_gzip_bomb_is_refused_unread():
    """64 MiB of zeros in 64 KiB of gzip, as a tenant's trainer image could serve it: inflating it
    automatically is what killed the operator."""
    bomb = gzip.compress(b"0" * (64 << 20), compresslevel=9)
    assert len(bomb) < MAX_METRICS_BYTES

    async def handler(request):
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    result = scrape_of(handler)
    assert (result.text, result.failure) == (None, COMPRESSED)
    assert "gzip" in result.message


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_more_than_a_mebibyte_is_refused_whether_declared_or_streamed(declared):
    payload = b"recipe_trainer_step 1\n" * ((MAX_METRICS_BYTES // 22) + 10)

    async def handler(request):
        if declared:
            return web.Response(body=payload)
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(payload), 100_000):
            await response.write(payload[start : start + 100_000])
        await response.write_eof()
        return response

    result = scrape_of(handler)
    assert (result.text, result.failure) == (None, TOO_LARGE)


def test_an_ordinary_exposition_is_read():
    async def handler(request):
        return web.Response(text=GOOD_TEXT)

    assert scrape_of(handler) == Scrape(text=GOOD_TEXT)


NOW = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)


def test_a_failed_scrape_is_a_condition_and_one_event_until_it_recovers():
    status = RecipeTrainingJobStatus(phase="Running")
    bomb = Scrape(failure=COMPRESSED, message="http://10.0.0.1:9400/metrics answered gzip")
    first = record_scrape(status, None, bomb, "/checkpoints", NOW)
    assert first and "gzip" in first
    [condition] = [c for c in status.conditions if c.type == SCRAPE_FAILED]
    assert (condition.status, condition.reason) == ("True", COMPRESSED)
    assert record_scrape(status, None, bomb, "/checkpoints", NOW) is None  # no event per interval
    oversize = Scrape(failure=TOO_LARGE, message="more than 1048576 bytes")
    assert record_scrape(status, None, oversize, "/checkpoints", NOW)  # a new reason: a new event
    assert (
        record_scrape(status, {"recipe_trainer_step": 7.0}, Scrape(text="..."), "/checkpoints", NOW) is None
    )
    [condition] = [c for c in status.conditions if c.type == SCRAPE_FAILED]
    assert condition.status == "False" and status.progress.step == 7


def test_an_unreachable_endpoint_while_a_pod_starts_sets_no_condition():
    status = RecipeTrainingJobStatus(phase="Running")
    assert record_scrape(status, None, Scrape(failure=UNREACHABLE, message="refused"), "/c", NOW) is None
    assert status.conditions == []


def test_the_operator_exports_its_scrape_failures():
    assert "recipe_operator_progress_scrape_failures_total" in exported_metric_names()


# ---------------------------------------------------------------- finding 6: unbounded error text


def test_a_huge_invalid_value_cannot_grow_the_status_past_its_bound():
    """500 KB in a field used to be echoed three times into the status (the InvalidSpec and Failed
    conditions and failure.message): past etcd's limit the status patch failed, the job never
    reached Failed and was retried every 10 s forever."""
    huge = "x" * 500_000
    body = {**BODY, "spec": {**BODY["spec"], "training": {"precision": huge}, "lora": {"r": huge}}}
    with pytest.raises(InvalidSpecError) as exc:
        parse_job(body)
    observed = phases.Observed(
        job=None, status=RecipeTrainingJobStatus(), now=NOW, errors=tuple(exc.value.errors)
    )
    decision = phases.decide(observed)
    assert decision.status.phase == "Failed"
    assert len(json.dumps(decision.status.to_manifest())) < STATUS_MAX_BYTES
    assert "spec.training.precision" in decision.status.failure.message
    assert all(len(c.message) <= MESSAGE_MAX_CHARS for c in decision.status.conditions)


# ---------------------------------------------------------------- finding 7: many pods


def test_resources_nodes_has_a_documented_maximum():
    body = {**BODY, "spec": {**BODY["spec"], "resources": {"nodes": MAX_NODES + 1, "cpu": "1m"}}}
    with pytest.raises(InvalidSpecError) as exc:
        parse_job(body)
    [error] = exc.value.errors
    assert error.path == "spec.resources.nodes" and str(MAX_NODES) in error.message
    assert parse_job({**body, "spec": {**body["spec"], "resources": {"nodes": MAX_NODES}}})


def test_a_burst_of_pod_events_is_one_reconcile_at_the_next_tick(monkeypatch):
    """Each pod event used to reconcile at once, and each reconcile lists every pod of the job:
    O(N^2) work for a gang of N pods starting."""
    reconciled = []

    async def counting_reconcile(_operator, namespace, name):
        reconciled.append((namespace, name))

    monkeypatch.setattr(handlers, "reconcile", counting_reconcile)
    settings = Settings.from_env()
    runtime = Operator(settings, kube=None, metrics=OperatorMetrics())
    runtime.leading = True
    memo = kopf.Memo(operator=runtime)
    labels = {LABEL_JOB_NAME: "flan"}

    async def burst():
        for _ in range(200):
            await handlers.pod_event(memo=memo, labels=labels, namespace="ml")

    asyncio.run(burst())
    assert reconciled == []
    assert list(runtime.wake_at) == [("ml", "flan")] and runtime.wake_at[("ml", "flan")] <= time.monotonic()


def test_pods_are_listed_in_pages(monkeypatch):
    """A namespace whose pods carry our labels (a tenant can label its own pods so) is read in
    pages and only up to a bound, not in one unbounded answer."""
    kube = Kube.__new__(Kube)
    pages = []

    async def request(method, path, query=None, **_):
        pages.append(dict(query))
        more = len(pages) < 100
        item = {"metadata": {"labels": {LABEL_JOB_NAME: "flan"}}}
        return {"items": [item] * LIST_PAGE_SIZE, "metadata": {"continue": "next" if more else ""}}

    kube._request = request
    items = asyncio.run(kube.list("v1", "Pod", "ml", {LABEL_JOB_NAME: "flan"}))
    assert all(q["limit"] == str(LIST_PAGE_SIZE) for q in pages)
    assert len(pages) == LIST_MAX_PAGES and len(items) == LIST_PAGE_SIZE * LIST_MAX_PAGES
    assert "continue" not in pages[0] and pages[1]["continue"] == "next"


class _GzipBomb(http.server.BaseHTTPRequestHandler):
    """A tenant's trainer image answering /metrics with 64 MiB of zeros in 64 KiB of gzip."""

    body = gzip.compress(b"0" * (64 << 20), compresslevel=9)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def bomb_port():
    with local_http.serving(_GzipBomb) as port:
        yield port


def test_a_rank_zero_serving_a_gzip_bomb_is_a_condition_and_an_event_on_its_job(operator, bomb_port):  # noqa: F811
    """The operator, in its kopf run against the API emulator, scrapes the bomb: the job gets the
    MetricsScrapeFailed condition and one Warning event, and the operator keeps running."""
    operator.create(rtj("bombed", metrics={"port": bomb_port}))
    start_pods(operator, "bombed", attempt=1, pod_ip="127.0.0.1")
    wait_for(phase_is(operator, "bombed", "Running"), what="Running")
    condition = wait_for(
        lambda: next(
            (c for c in status(operator, "bombed").get("conditions", []) if c["type"] == SCRAPE_FAILED), None
        ),
        what="the MetricsScrapeFailed condition",
    )
    assert condition["status"] == "True" and condition["reason"] == COMPRESSED
    events = wait_for(
        lambda: [e for e in operator.events(NS, "bombed") if e["reason"] == SCRAPE_FAILED],
        what="the Warning event",
    )
    assert events[0]["type"] == "Warning" and "gzip" in events[0]["message"]


def test_a_pod_with_an_ipv6_address_is_scraped():
    """On IPv6-only and dual-stack clusters status.podIP is IPv6: the URL needs it in brackets."""
    import asyncio
    import http.server
    import socket
    import threading

    class V6Server(http.server.HTTPServer):
        address_family = socket.AF_INET6

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"recipe_train_step 7\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = V6Server(("::1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scrape = asyncio.run(fetch_metrics("::1", server.server_address[1]))
    finally:
        server.shutdown()
    assert scrape.failure is None and "recipe_train_step 7" in scrape.text
