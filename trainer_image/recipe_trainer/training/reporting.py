"""The one `Reporter` the training loop reports to, and the sinks behind it.

The recipe calls `reporter.report(record)` once per event (start, step, skipped step, validation,
checkpoint, end, crash: `records`); the sinks each take what they need: the Prometheus metrics
(`metrics.TrainerMetrics.report`), the notifications (`NotifierSink`) and the run log
(`RunLogSink`, which writes each record's fields as they are, plus `event` and `time`) and a
line a step in the log (`StepLogSink`). Adding a
number is one field of a record and one line in the sink that shows it. Only rank 0 has sinks;
the other ranks report to none.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Protocol

from recipe_api.trainer_config import TrainerConfig

from ..run_log import RunLogWriter
from .metrics import TrainerMetrics
from .notifications import Notifier
from .records import Checkpointed, Crashed, Finished, Record, SkippedStep, Started, Stepped, Validated

log = logging.getLogger("recipe_trainer")


class Sink(Protocol):
    def report(self, record: Record) -> None: ...


class Reporter:
    """Hands every record to every sink, in order."""

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)

    @classmethod
    def rank_zero(cls, config: TrainerConfig) -> Reporter:
        """The metrics endpoint on spec.metrics.port, the notifications and the run log."""
        metrics = TrainerMetrics()
        try:
            metrics.serve(config.spec.metrics.port)
        except OSError as exc:  # metrics matter less than training: say so and go on
            log.info(f"metrics endpoint not started on port {config.spec.metrics.port}: {exc}")
        run_log = RunLogSink(RunLogWriter(config.runtime.run_dir))
        return cls([metrics, NotifierSink(Notifier.from_config(config)), run_log, StepLogSink()])

    def report(self, record: Record) -> None:
        for sink in self.sinks:
            sink.report(record)


class RunLogSink:
    """The run log (`run_log`): one event a record, named as the readers expect."""

    def __init__(self, writer: RunLogWriter):
        self.writer = writer

    def report(self, record: Record) -> None:
        kind, fields = _run_log_event(record)
        if kind is not None:
            self.writer.write(kind, **fields)


def _run_log_event(record: Record) -> tuple[str | None, dict[str, Any]]:
    match record:
        case Started():
            fields = asdict(record)
            del fields["step"], fields["epoch"]  # the resume's step is resumed_from_step
            return "start", fields
        case Stepped():
            return "step", {**asdict(record), "tokens_per_second": record.tokens_per_second}
        case SkippedStep(step=step):
            return "step", {"step": step, "loss": None, "skipped": True, "learning_rate": 0.0}
        case Validated():
            fields = asdict(record)
            best = fields.pop("improved")
            return "validation", {**fields, "quality": record.quality, "best": best}
        case Checkpointed():
            return "checkpoint", asdict(record)
        case Finished(summary=summary):
            return "end", summary.model_dump(mode="json")
    return None, {}


class StepLogSink:
    """One plain line a step in the ranks' output (train.log locally, `kubectl logs` in a pod), for
    whoever reads the log rather than the metrics."""

    def __init__(self) -> None:
        self.total_steps: int | None = None

    def report(self, record: Record) -> None:
        match record:
            case Started(total_steps=total_steps):
                self.total_steps = total_steps
            case Stepped():
                log.info(
                    f"step {record.step}/{self.total_steps}: loss {record.loss:.4f}, "
                    f"lr {record.learning_rate:.3g}, {record.tokens_per_second or 0:,.0f} tokens/s, "
                    f"{record.seconds:.2f} s"
                )


class NotifierSink:
    """Webhook and W&B (`notifications`): start, each validation, the end and a crash."""

    def __init__(self, notifier: Notifier):
        self.notifier = notifier

    def report(self, record: Record) -> None:
        match record:
            case Started():
                self.notifier.on_start(record.total_steps, record.resumed_from_step)
            case Validated():
                self.notifier.on_validation(
                    record.step,
                    record.validation_loss,
                    record.best_loss,
                    record.perplexity,
                    record.quality_scores,
                )
            case Finished(summary=summary):
                self.notifier.on_finish(summary)
            case Crashed(reason=reason, step=step):
                self.notifier.on_crash(reason, step)
