"""Progress parsing, settings from the environment, the operator's metric names and the
kopf.run arguments of the console script."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from recipe_api import contract
from recipe_api.status import PHASES
from recipe_operator.main import kopf_run_arguments
from recipe_operator.metrics import OperatorMetrics, exported_metric_names
from recipe_operator.progress import build_last_checkpoint, build_progress, format_eta, read_samples
from recipe_operator.settings import Settings, env_names


def exposition(**values: float) -> str:
    """Real prometheus_client output, as the trainer's registry would produce it."""
    registry = CollectorRegistry()
    for name, value in values.items():
        Gauge(name, name, registry=registry).set(value)
    Gauge(contract.QUALITY_SCORE, "q", ["metric"], registry=registry).labels("overall").set(0.7)
    return generate_latest(registry).decode()


def test_progress_from_the_trainers_contract_series():
    text = exposition(
        **{
            contract.STEP: 150,
            contract.TOTAL_STEPS: 600,
            contract.EPOCH: 1.5,
            contract.LOSS: 1.234567891,
            contract.VALIDATION_LOSS: 1.5,
            contract.BEST_VALIDATION_LOSS: 1.4,
            contract.TOKENS_PER_SECOND: 5321.5,
            contract.ETA_SECONDS: 3 * 3600 + 125,
            contract.CURRICULUM_STAGE: 1,
        }
    )
    assert build_progress(read_samples(text)) == {
        "step": 150,
        "totalSteps": 600,
        "percent": 25.0,
        "epoch": 1.5,
        "loss": 1.234568,
        "validationLoss": 1.5,
        "bestValidationLoss": 1.4,
        "tokensPerSecond": 5321.5,
        "eta": "3h2m",
        "curriculumStage": 1,
    }


def test_absent_series_keep_their_previous_values_and_nan_is_ignored():
    previous = {"step": 10, "totalSteps": 100, "validationLoss": 2.0}
    samples = read_samples(exposition(**{contract.STEP: 20, contract.VALIDATION_LOSS: float("nan")}))
    assert build_progress(samples, previous) == {
        "step": 20,
        "totalSteps": 100,
        "validationLoss": 2.0,
        "percent": 20.0,
    }


def test_last_checkpoint_from_the_gauges():
    samples = read_samples(
        exposition(**{contract.LAST_CHECKPOINT_STEP: 400, contract.LAST_CHECKPOINT_TIMESTAMP: 1767268800})
    )
    assert build_last_checkpoint(samples, {"step": 300}, "/checkpoints") == {
        "step": 400,
        "path": "/checkpoints/step-00000400",
        "time": "2026-01-01T12:00:00Z",
    }


def test_garbage_metrics_text_raises_value_error_for_the_caller_to_skip():
    with pytest.raises(ValueError):
        read_samples("this is { not prometheus")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.6, "1m0s"), (61, "1m1s"), (4830, "1h20m"), (90061, "1d1h"), (-5, "0s")],
)
def test_eta_text(seconds, text):
    assert format_eta(seconds) == text


def test_settings_defaults():
    s = Settings.from_env({})
    assert s.all_namespaces and not s.leader_election and not s.webhook_enabled
    assert (s.metrics_port, s.health_port, s.webhook_port, s.progress_interval_seconds) == (
        8080,
        8081,
        9443,
        30.0,
    )


def test_settings_from_the_chart_variables():
    s = Settings.from_env(
        {
            "RECIPE_OPERATOR_NAMESPACES": "ml, research,,",
            "RECIPE_OPERATOR_TRAINER_IMAGE": "registry.example/trainer:2",
            "RECIPE_OPERATOR_METRICS_PORT": "9090",
            "RECIPE_OPERATOR_HEALTH_PORT": "9091",
            "RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS": "15",
            "RECIPE_OPERATOR_LEADER_ELECTION_LEASE": "recipe-operator",
            "RECIPE_OPERATOR_LEADER_ELECTION_NAMESPACE": "ops",
            "RECIPE_OPERATOR_WEBHOOK_ENABLED": "true",
            "RECIPE_OPERATOR_WEBHOOK_PORT": "9443",
            "RECIPE_OPERATOR_WEBHOOK_CERT_FILE": "/certs/tls.crt",
            "RECIPE_OPERATOR_WEBHOOK_KEY_FILE": "/certs/tls.key",
            "UNRELATED": "x",
        }
    )
    assert s.namespaces == ["ml", "research"] and s.leader_election and s.webhook_enabled
    assert s.lease_namespace() == "ops" and s.webhook_cert_file == "/certs/tls.crt"
    assert s.trainer_image == "registry.example/trainer:2" and s.progress_interval_seconds == 15.0
    assert {
        "RECIPE_OPERATOR_NAMESPACES",
        "RECIPE_OPERATOR_TRAINER_IMAGE",
        "RECIPE_OPERATOR_METRICS_PORT",
        "RECIPE_OPERATOR_HEALTH_PORT",
        "RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS",
        "RECIPE_OPERATOR_LEADER_ELECTION_LEASE",
        "RECIPE_OPERATOR_WEBHOOK_ENABLED",
        "RECIPE_OPERATOR_WEBHOOK_CERT_FILE",
        "RECIPE_OPERATOR_WEBHOOK_PORT",
    } <= env_names()


@pytest.mark.parametrize(
    "env",
    [
        {"RECIPE_OPERATOR_METRICS_PORT": "http"},
        {"RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS": "0"},
        {"RECIPE_OPERATOR_WEBHOOK_ENABLED": "true"},  # a webhook without the chart's certificate
    ],
)
def test_bad_settings_are_rejected(env):
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_kopf_run_arguments():
    assert kopf_run_arguments(Settings.from_env({})) == {
        "liveness_endpoint": "http://0.0.0.0:8081/healthz",
        "standalone": True,
        "clusterwide": True,
    }
    scoped = kopf_run_arguments(
        Settings.from_env({"RECIPE_OPERATOR_NAMESPACES": "a,b", "RECIPE_OPERATOR_LEADER_ELECTION_LEASE": "p"})
    )
    assert scoped["namespaces"] == ["a", "b"] and "clusterwide" not in scoped
    # Replicas elect a leader on a Lease, never with kopf peering (which pauses only kopf's handlers).
    assert scoped["standalone"] is True


def test_exported_metric_names_cover_every_series_the_chart_uses():
    names = exported_metric_names()
    for name in (
        "recipe_operator_jobs",
        "recipe_operator_jobs_created_total",
        "recipe_operator_jobs_succeeded_total",
        "recipe_operator_jobs_failed_total",
        "recipe_operator_jobs_restarted_total",
        "recipe_operator_time_to_running_seconds_bucket",
        "recipe_operator_reconcile_duration_seconds_bucket",
        "recipe_operator_reconcile_duration_seconds_count",
        "recipe_operator_reconcile_errors_total",
    ):
        assert name in names


def test_the_phase_gauge_counts_each_job_once():
    metrics = OperatorMetrics()
    metrics.set_phase("ml", "a", "Running")
    metrics.set_phase("ml", "b", "Running")
    metrics.set_phase("ml", "a", "Succeeded")
    metrics.set_phase("ml", "b", None)
    values = {
        s.labels["phase"]: s.value
        for f in metrics.registry.collect()
        if f.name == "recipe_operator_jobs"
        for s in f.samples
    }
    assert values == {**dict.fromkeys(PHASES, 0.0), "Succeeded": 1.0}
