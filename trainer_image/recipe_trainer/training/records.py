"""What the training loop reports: one typed record per event (`reporting.Reporter` hands them out).

A field here is a number every sink may show: the run log writes each record's fields as they are
(the local progress bar, the curves and the tests read those names), the metrics and the
notifications pick what they show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recipe_api.trainer_config import TerminationSummary


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
    diversity: dict[str, dict[str, float]] = field(default_factory=dict)  # samples' vs references'

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
