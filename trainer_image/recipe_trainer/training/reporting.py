"""What the training loop reports, as one typed record per event, and the one `Reporter` it goes to.

The recipe calls `reporter.report(record)` once per event (start, step, skipped step, validation,
checkpoint, end, crash); the sinks behind it each take what they need: the Prometheus metrics
(`metrics.TrainerMetrics.report`), the notifications (`NotifierSink`) and the run log
(`RunLogSink`). Adding a number is one field of a record here and one line in the sink that shows
it. Only rank 0 has sinks; the other ranks report to none.

The run log writes each record's fields as they are (plus `event` and `time`), so the local
progress bar, the curves and the tests read the same names as this module defines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from recipe_api.trainer_config import TerminationSummary

from ..run_log import RunLogWriter
from .notifications import Notifier


@dataclass(frozen=True)
class Started:
    """Training starts or resumes."""

    total_steps: int
    step: int
    epoch: float
    resumed_from_step: int | None
    world_size: int
    micro_batches_per_epoch: int


@dataclass(frozen=True)
class Stepped:
    """An optimizer step done; `tokens` and `examples` over all ranks, `seconds` its wall time."""

    step: int
    epoch: float
    loss: float  # plain cross-entropy per real target token, as validation
    objective: float  # what is optimised (label-smoothed), per target token
    learning_rate: float
    grad_norm: float | None
    tokens: int
    examples: int
    seconds: float
    noise_sigma: float | None
    packing_efficiency: float | None
    curriculum_stage: int
    quality_threshold: float

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True)
class SkippedStep:
    """A step whose loss was NaN or infinite on some rank: it ran with learning rate 0."""

    step: int


@dataclass(frozen=True)
class Validated:
    """A validation: loss and perplexity over the split, quality of generated samples."""

    step: int
    validation_loss: float
    perplexity: float | None
    best_loss: float  # the lowest validation loss so far, this one included
    improved: bool  # a new best (saved as the best checkpoint)
    quality_scores: dict[str, float] = field(default_factory=dict)  # overall, coherence, ...

    @property
    def quality(self) -> float | None:
        return self.quality_scores.get("overall")


@dataclass(frozen=True)
class Checkpointed:
    step: int
    path: str
    seconds: float
    bytes: int
    best: bool


@dataclass(frozen=True)
class Finished:
    summary: TerminationSummary


@dataclass(frozen=True)
class Crashed:
    reason: str
    step: int | None


Record = Started | Stepped | SkippedStep | Validated | Checkpointed | Finished | Crashed


class Sink(Protocol):
    def report(self, record: Record) -> None: ...


class Reporter:
    """Hands every record to every sink, in order."""

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)

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
