import math
import socket
import subprocess
import urllib.request

import prometheus_client
import pytest
import torch
from chart.helpers import promtool_path
from prometheus_client.parser import text_string_to_metric_families
from recipe_api import contract
from recipe_trainer.training.metrics import TrainerMetrics, exported_metric_names, perplexity
from recipe_trainer.training.records import Checkpointed, SkippedStep, Started, Stepped, Validated

CONTRACT_METRICS = {
    value
    for name, value in vars(contract).items()
    if name.isupper()
    and isinstance(value, str)
    and value.startswith(contract.TRAINER_METRIC_PREFIX)
    and value != contract.TRAINER_METRIC_PREFIX
}


def _started(total_steps: int) -> Started:
    return Started(
        total_steps, step=0, epoch=0.0, resumed_from_step=None, world_size=1, micro_batches_per_epoch=50
    )


def _trained_a_while() -> TrainerMetrics:
    """The records a short run with one validation and one checkpoint reports."""
    metrics = TrainerMetrics()
    metrics.report(_started(100))
    for step in range(1, 4):
        metrics.report(
            Stepped(
                step,
                epoch=step / 50,
                loss=3.0 / step,
                objective=3.1 / step,
                learning_rate=1e-4 * step,
                grad_norm=0.9,
                tokens=2000,
                examples=16,
                seconds=0.5,
                noise_sigma=0.5 / step,
                packing_efficiency=0.97,
                curriculum_stage=1,
                quality_threshold=0.6,
            )
        )
    metrics.report(SkippedStep(4))
    metrics.report(Validated(3, 2.0, math.exp(2.0), 2.0, True, {"overall": 0.7, "coherence": 0.8}))
    metrics.report(Checkpointed(step=3, path="step-3", seconds=4.2, bytes=123_456_789, best=True))
    return metrics


def _samples(metrics: TrainerMetrics) -> dict[tuple[str, tuple], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exposition_passes_promtool_without_lint_warnings():
    """promtool is installed by `make test` (scripts/install-tools.sh); missing, this fails with how
    to install it instead of skipping, as the chart tests do."""
    result = subprocess.run(
        [promtool_path(), "check", "metrics"],
        input=_trained_a_while().exposition(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


def test_every_contract_metric_is_exported_and_the_list_covers_the_exposition():
    names = exported_metric_names()
    histogram_series = {f"{contract.CHECKPOINT_SAVE_SECONDS}_{s}" for s in ("bucket", "sum", "count")}
    assert CONTRACT_METRICS - {contract.CHECKPOINT_SAVE_SECONDS} <= names
    assert histogram_series <= names
    assert {name for name, _ in _samples(_trained_a_while())} <= names


def test_values_a_dashboard_shows_after_three_steps():
    samples = _samples(_trained_a_while())
    assert samples[(contract.STEP, ())] == 3
    assert samples[(contract.TOKENS_TOTAL, ())] == 6000
    assert samples[(contract.TOKENS_PER_SECOND, ())] == 4000
    assert samples[(contract.SAMPLES_PER_SECOND, ())] == 32
    assert samples[(contract.ETA_SECONDS, ())] == pytest.approx(97 * 0.5)
    assert samples[(contract.VALIDATION_PERPLEXITY, ())] == pytest.approx(math.exp(2.0))
    assert samples[(contract.QUALITY_SCORE, (("metric", "coherence"),))] == 0.8
    assert samples[(contract.NONFINITE_STEPS_TOTAL, ())] == 1
    assert samples[(f"{contract.CHECKPOINT_SAVE_SECONDS}_count", ())] == 1
    assert samples[(contract.LAST_CHECKPOINT_STEP, ())] == 3


def test_values_not_yet_known_are_absent_rather_than_zero():
    metrics = TrainerMetrics()
    metrics.report(_started(100))
    names = {name for name, _ in _samples(metrics)}
    assert contract.STEP in names
    assert contract.VALIDATION_LOSS not in names
    assert contract.LOSS not in names
    metrics.report(Validated(0, 1.5, math.exp(1.5), best_loss=1.5, improved=True))
    assert _samples(metrics)[(contract.VALIDATION_LOSS, ())] == 1.5


def test_gpu_memory_is_reported_only_where_cuda_is_available():
    names = {name for name, _ in _samples(_trained_a_while())}
    gpu = {contract.GPU_MEMORY_ALLOCATED_BYTES, contract.GPU_MEMORY_RESERVED_BYTES}
    assert (gpu <= names) if torch.cuda.is_available() else not (gpu & names)


def test_instances_keep_out_of_the_global_registry():
    TrainerMetrics(), TrainerMetrics()
    global_names = {s.name for f in prometheus_client.REGISTRY.collect() for s in f.samples}
    assert contract.STEP not in global_names


def test_serve_answers_a_scrape_over_http():
    metrics = _trained_a_while()
    port = metrics.serve(0, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert f"{contract.STEP} 3.0" in body


def test_perplexity_is_exp_of_the_loss_infinite_when_diverged_and_nan_when_broken():
    assert perplexity(0.0) == 1.0
    assert math.isclose(perplexity(2.0), math.exp(2.0))
    assert perplexity(699.0) == math.exp(699.0) and math.isfinite(perplexity(699.0))
    assert perplexity(700.0) == math.inf and perplexity(1e9) == math.inf, "no OverflowError"
    assert math.isnan(perplexity(math.nan))


def test_serve_by_default_answers_on_ipv6_and_ipv4_loopback():
    """A pod's IP may be IPv6 (single- or dual-stack clusters): the default bind takes both."""
    if not socket.has_ipv6:
        pytest.fail("this kernel has no IPv6: the dual-stack bind cannot be checked here")
    port = _trained_a_while().serve(0)
    for url in (f"http://[::1]:{port}/metrics", f"http://127.0.0.1:{port}/metrics"):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert f"{contract.STEP} 3.0" in response.read().decode()
