"""The operator's own Prometheus metrics, on their own registry and port.

Counters move once per real phase transition (the state machine reports transitions, not
handler retries). `exported_metric_names()` lists every sample name the exposition can hold;
the Helm chart's tests check dashboards and alerts against it.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from recipe_api.status import PHASES

PREFIX = "recipe_operator_"


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_created = Counter(
            PREFIX + "jobs_created",
            "RecipeTrainingJobs whose first attempt was launched.",
            ["namespace"],
            registry=r,
        )
        self.jobs_succeeded = Counter(
            PREFIX + "jobs_succeeded", "RecipeTrainingJobs that reached Succeeded.", ["namespace"], registry=r
        )
        self.jobs_failed = Counter(
            PREFIX + "jobs_failed",
            "RecipeTrainingJobs that reached Failed.",
            ["namespace", "reason"],
            registry=r,
        )
        self.jobs_restarted = Counter(
            PREFIX + "jobs_restarted",
            "Gang restarts (a new attempt after a retryable failure).",
            ["namespace", "reason"],
            registry=r,
        )
        self.jobs_by_phase = Gauge(
            PREFIX + "jobs",
            "RecipeTrainingJobs this operator knows, by phase.",
            ["namespace", "phase"],
            registry=r,
        )
        self.time_to_running = Histogram(
            PREFIX + "time_to_running_seconds",
            "Seconds from a RecipeTrainingJob's creation to all of its pods running (first time).",
            ["namespace"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=r,
        )
        self.reconcile_duration = Histogram(
            PREFIX + "reconcile_duration_seconds",
            "Seconds one reconciliation of a RecipeTrainingJob took (reads, decision, writes).",
            ["namespace"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.reconcile_errors = Counter(
            PREFIX + "reconcile_errors",
            "Reconciliations that raised (retried by kopf).",
            ["namespace"],
            registry=r,
        )
        self.scrape_failures = Counter(
            PREFIX + "progress_scrape_failures",
            "Scrapes of rank 0's /metrics that gave no progress, by reason (Unreachable is normal "
            "while a pod starts; TooLarge, Compressed, HttpError and Unparsable are the trainer "
            "image's doing and also set the job's MetricsScrapeFailed condition).",
            ["namespace", "reason"],
            registry=r,
        )
        self._phases: dict[tuple[str, str], str] = {}

    def count(self, counter: str, namespace: str, reason: str | None = None) -> None:
        if counter == "created":
            self.jobs_created.labels(namespace).inc()
        elif counter == "succeeded":
            self.jobs_succeeded.labels(namespace).inc()
        elif counter == "failed":
            self.jobs_failed.labels(namespace, reason or "Unknown").inc()
        elif counter == "restarted":
            self.jobs_restarted.labels(namespace, reason or "Unknown").inc()
        else:
            raise ValueError(f"unknown counter {counter!r}")

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a job's phase (None: it is gone) and refresh the by-phase gauge."""
        key = (namespace, name)
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        tally = Tally((ns, ph) for (ns, _), ph in self._phases.items())
        namespaces = {ns for ns, _ in self._phases} | {namespace}
        for ns in namespaces:
            for ph in PHASES:
                self.jobs_by_phase.labels(ns, ph).set(tally.get((ns, ph), 0))

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)


def exported_metric_names() -> set[str]:
    """Every sample name the operator's /metrics can contain (_total/_created/_bucket/...)."""
    metrics = OperatorMetrics()
    for counter in ("created", "succeeded", "failed", "restarted"):
        metrics.count(counter, "ns", "Reason")
    metrics.set_phase("ns", "job", "Running")
    metrics.time_to_running.labels("ns").observe(1.0)
    metrics.reconcile_duration.labels("ns").observe(0.1)
    metrics.reconcile_errors.labels("ns").inc()
    metrics.scrape_failures.labels("ns", "TooLarge").inc()
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}
