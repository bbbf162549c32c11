"""The trainer's Prometheus metrics, served by rank 0 on `spec.metrics.port`.

The names the operator reads (status.progress) and the existing ones come from
`recipe_api.contract`; a metric only the dashboards show may be named here, with
`contract.TRAINER_METRIC_PREFIX`. The Helm chart's dashboards and alerts may query any of them:
tests/chart checks every query against `exported_metric_names`. The metrics live in a registry of their own, so a test or a second
trainer in one process never collides with the global registry.

Counters, step, total steps, epoch and the checkpoint-duration histogram exist from the start.
Every other gauge appears in the exposition only once the loop has a value for it, because a
gauge reading 0 before the first validation would claim a validation loss of 0.
"""

from __future__ import annotations

import math
import time

import prometheus_client
import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from recipe_api import contract

from .records import Checkpointed, Record, SkippedStep, Started, Stepped, Validated

CHECKPOINT_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
ETA_SMOOTHING = 0.1  # weight of the newest step in the moving average of step time


class TrainerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._unregistered: set[Gauge] = set()
        self._seconds_per_step: float | None = None
        self._planned_steps = 0
        r = self.registry
        self.step = Gauge(contract.STEP, "Optimizer steps done.", registry=r)
        self.total_steps = Gauge(contract.TOTAL_STEPS, "Optimizer steps planned for the run.", registry=r)
        self.epoch = Gauge(contract.EPOCH, "Epochs done, fractional.", registry=r)
        self.tokens = Counter(
            contract.TOKENS_TOTAL, "Real (non-padding) target tokens trained on.", registry=r
        )
        self.nonfinite_steps = Counter(
            contract.NONFINITE_STEPS_TOTAL, "Optimizer steps skipped for a NaN or infinite loss.", registry=r
        )
        self.checkpoint_save_seconds = Histogram(
            contract.CHECKPOINT_SAVE_SECONDS,
            "Wall time of writing one complete checkpoint.",
            buckets=CHECKPOINT_SECONDS_BUCKETS,
            registry=r,
        )
        self.loss = self._gauge(
            contract.LOSS, "Training cross-entropy per real target token (as validation), last step."
        )
        self.training_objective = self._gauge(
            contract.TRAINING_OBJECTIVE, "Optimised loss per target token (with label smoothing), last step."
        )
        self.learning_rate = self._gauge(contract.LEARNING_RATE, "Learning rate of the last optimizer step.")
        self.grad_norm = self._gauge(contract.GRAD_NORM, "Global gradient norm before clipping.")
        self.tokens_per_second = self._gauge(
            contract.TOKENS_PER_SECOND, "Real target tokens per second, all ranks, last step."
        )
        self.samples_per_second = self._gauge(
            contract.SAMPLES_PER_SECOND, "Recipes per second, all ranks, last step."
        )
        self.validation_loss = self._gauge(contract.VALIDATION_LOSS, "Loss on the validation split.")
        self.validation_perplexity = self._gauge(
            contract.VALIDATION_PERPLEXITY, "exp(validation loss) on the validation split."
        )
        self.best_validation_loss = self._gauge(
            contract.BEST_VALIDATION_LOSS, "Lowest validation loss so far."
        )
        self.quality_score = self._gauge(
            contract.QUALITY_SCORE, "Quality score (0 to 1) of recipes generated at validation.", ["metric"]
        )
        self.curriculum_stage = self._gauge(contract.CURRICULUM_STAGE, "Current curriculum stage, from 0.")
        self.quality_threshold = self._gauge(
            contract.QUALITY_THRESHOLD, "Minimum quality score of recipes the curriculum admits now."
        )
        self.gradient_noise_sigma = self._gauge(
            contract.GRADIENT_NOISE_SIGMA, "Gradient noise scale relative to the gradient's RMS, last step."
        )
        self.checkpoint_size = self._gauge(contract.CHECKPOINT_SIZE_BYTES, "Size of the last checkpoint.")
        self.last_checkpoint_step = self._gauge(contract.LAST_CHECKPOINT_STEP, "Step of the last checkpoint.")
        self.last_checkpoint_timestamp = self._gauge(
            contract.LAST_CHECKPOINT_TIMESTAMP, "Unix time the last checkpoint completed."
        )
        self.eta = self._gauge(contract.ETA_SECONDS, "Estimated seconds until the last step.")
        self.packing_efficiency = self._gauge(
            contract.PACKING_EFFICIENCY, "Fraction of sequence positions holding real tokens."
        )
        self.gpu_memory_allocated = self._gauge(
            contract.GPU_MEMORY_ALLOCATED_BYTES, "GPU memory held by tensors on this rank's device."
        )
        self.gpu_memory_reserved = self._gauge(
            contract.GPU_MEMORY_RESERVED_BYTES, "GPU memory reserved by the caching allocator."
        )

    # ------------------------------------------------------------------ the Reporter's sink

    def report(self, record: Record) -> None:
        """One record from the loop (`reporting`); each gauge is set by one line here."""
        match record:
            case Started():
                self._planned_steps = record.total_steps
                self.total_steps.set(record.total_steps)
                self.step.set(record.step)
                self.epoch.set(record.epoch)
            case Stepped():
                self._on_step(record)
            case SkippedStep():
                self.nonfinite_steps.inc()
            case Validated():
                self._set(self.validation_loss, record.validation_loss)
                self._set(self.validation_perplexity, perplexity(record.validation_loss))
                self._set(self.best_validation_loss, record.best_loss)
                for name, value in record.quality_scores.items():
                    self._set(self.quality_score, value, metric=name)
            case Checkpointed():
                self.checkpoint_save_seconds.observe(record.seconds)
                self._set(self.checkpoint_size, record.bytes)
                self._set(self.last_checkpoint_step, record.step)
                self._set(self.last_checkpoint_timestamp, time.time())

    def _on_step(self, record: Stepped) -> None:
        """Also updates the ETA and, where CUDA is available, GPU memory."""
        self._set(self.step, record.step)
        self._set(self.epoch, record.epoch)
        self._set(self.loss, record.loss)
        self._set(self.training_objective, record.objective)
        self._set(self.learning_rate, record.learning_rate)
        self.tokens.inc(record.tokens)
        if record.grad_norm is not None:
            self._set(self.grad_norm, record.grad_norm)
        if record.seconds > 0:
            self._set(self.tokens_per_second, record.tokens / record.seconds)
            self._set(self.samples_per_second, record.examples / record.seconds)
            self._update_eta(record.step, record.seconds)
        if record.noise_sigma is not None:
            self._set(self.gradient_noise_sigma, record.noise_sigma)
        if record.packing_efficiency is not None:
            self._set(self.packing_efficiency, record.packing_efficiency)
        self._set(self.curriculum_stage, record.curriculum_stage)
        self._set(self.quality_threshold, record.quality_threshold)
        self._update_gpu_memory()

    # ------------------------------------------------------------------ exposition

    def serve(self, port: int, addr: str | None = None) -> int:
        """Serve /metrics in a daemon thread (rank 0 only: one scrape target per job).
        Returns the port bound (useful with port 0). By default on every address of the pod, IPv6
        and IPv4 alike ("::" is dual-stack on Linux), so the operator's scrape reaches it on an
        IPv6-only or dual-stack cluster too; IPv4 only where the kernel has no IPv6."""
        if addr is not None:
            server, _thread = prometheus_client.start_http_server(port, addr=addr, registry=self.registry)
            return server.server_port
        try:
            server, _thread = prometheus_client.start_http_server(port, addr="::", registry=self.registry)
        except OSError:  # no IPv6 in this kernel or network namespace
            server, _thread = prometheus_client.start_http_server(
                port, addr="0.0.0.0", registry=self.registry
            )
        return server.server_port

    def exposition(self) -> bytes:
        """The text a scrape would get now."""
        return prometheus_client.generate_latest(self.registry)

    # ------------------------------------------------------------------ helpers

    def _gauge(self, name: str, documentation: str, labels: list[str] | None = None) -> Gauge:
        """A gauge that joins the registry when first set (see the module docstring)."""
        gauge = Gauge(name, documentation, labels or [], registry=None)
        self._unregistered.add(gauge)
        return gauge

    def _set(self, gauge: Gauge, value: float, **labels: str) -> None:
        if gauge in self._unregistered:
            self._unregistered.discard(gauge)
            self.registry.register(gauge)
        (gauge.labels(**labels) if labels else gauge).set(value)

    def _update_eta(self, step: int, seconds: float) -> None:
        if self._seconds_per_step is None:
            self._seconds_per_step = seconds
        else:
            self._seconds_per_step += ETA_SMOOTHING * (seconds - self._seconds_per_step)
        if self._planned_steps > 0:
            self._set(self.eta, max(0, self._planned_steps - step) * self._seconds_per_step)

    def _update_gpu_memory(self) -> None:
        if torch.cuda.is_available():
            self._set(self.gpu_memory_allocated, torch.cuda.memory_allocated())
            self._set(self.gpu_memory_reserved, torch.cuda.memory_reserved())


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy per token): the one rule for the gauge, the run log and `recipe-train
    eval`. +Inf instead of an overflow for a diverged model (exp overflows a float past ~709.8); a
    NaN loss stays NaN, so a broken evaluation never reads as merely diverged."""
    return math.inf if loss >= 700 else math.exp(loss)


def exported_metric_names() -> set[str]:
    """Every sample name the trainer's exposition can contain (histogram _bucket/_sum/_count
    and counters' _created included): the Helm chart's test checks dashboards against it."""
    metrics = TrainerMetrics()
    for record in (
        Started(
            total_steps=2, step=0, epoch=0.0, resumed_from_step=None, world_size=1, micro_batches_per_epoch=2
        ),
        Stepped(
            step=1,
            epoch=0.5,
            loss=1.0,
            objective=1.1,
            learning_rate=1e-4,
            grad_norm=1.0,
            tokens=10,
            examples=1,
            seconds=1.0,
            noise_sigma=0.1,
            packing_efficiency=1.0,
            curriculum_stage=0,
            quality_threshold=0.5,
        ),
        SkippedStep(step=2),
        Validated(
            step=2,
            validation_loss=1.0,
            perplexity=2.7,
            best_loss=1.0,
            improved=True,
            quality_scores={"overall": 0.5},
        ),
        Checkpointed(step=2, path="step-2", seconds=1.0, bytes=1, best=True),
    ):
        metrics.report(record)
    for gauge in (metrics.gpu_memory_allocated, metrics.gpu_memory_reserved):
        metrics._set(gauge, 0)
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}
