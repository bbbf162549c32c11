"""Learning rate as a pure function of the optimizer step (`spec.training.scheduler`).

Linear warmup from 0 to the peak rate over `warmupSteps`, then one of:

* `cosine-restarts` (SGDR): cosine from the peak down to `minLearningRate` over
  `firstCycleSteps`, then back to the peak, each cycle `cycleMultiplier` times longer;
* `cosine`: one cosine decay to `minLearningRate` at the last step;
* `linear`: linear decay to `minLearningRate` at the last step;
* `constant`: the peak rate.

`warmupSteps` and `firstCycleSteps` left null scale with the run (`DEFAULT_WARMUP_FRACTION` of the
steps warm up; the rest is two cosine cycles, the second `cycleMultiplier` times the first, ending
at the last step): fixed step counts fit one run length only, e.g. a 1,000-step warmup would keep a
60-step LoRA run below 6% of its learning rate throughout.

Because the rate depends on the step alone, resuming needs no scheduler state besides the
step, and the same object serves as a `LambdaLR` multiplier or sets param groups directly.
`step` is the number of optimizer steps already taken: `lr(step)` is the rate of the next update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from recipe_api.v1alpha1 import SchedulerSpec

DEFAULT_WARMUP_FRACTION = 0.05  # of the run's optimizer steps, when warmupSteps is null


@dataclass(frozen=True)
class LearningRateSchedule:
    """`lr(step)`; `total_steps` is needed by the `cosine` and `linear` decays only."""

    peak_learning_rate: float
    spec: SchedulerSpec
    total_steps: int | None = None

    def __post_init__(self) -> None:
        relative = self.spec.warmup_steps is None or (
            self.spec.type == "cosine-restarts" and self.spec.first_cycle_steps is None
        )
        if (self.spec.type in ("cosine", "linear") or relative) and not self.total_steps:
            raise ValueError(
                f"scheduler type {self.spec.type!r} with these settings follows the run's length, so it "
                "needs the total number of optimizer steps (set training.maxSteps or epochs)"
            )

    @property
    def warmup_steps(self) -> int:
        if self.spec.warmup_steps is not None:
            return self.spec.warmup_steps
        return round(DEFAULT_WARMUP_FRACTION * self.total_steps)  # type: ignore[operator]

    @property
    def first_cycle_steps(self) -> int:
        if self.spec.first_cycle_steps is not None:
            return self.spec.first_cycle_steps
        after_warmup = self.total_steps - self.warmup_steps  # type: ignore[operator]
        return max(1, math.ceil(after_warmup / (1.0 + self.spec.cycle_multiplier)))

    def lr(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        warmup = self.warmup_steps
        if step < warmup:
            return self.peak_learning_rate * step / warmup
        after_warmup = step - warmup
        kind = self.spec.type
        if kind == "constant":
            return self.peak_learning_rate
        if kind == "cosine-restarts":
            position = _position_in_cycle(after_warmup, self.first_cycle_steps, self.spec.cycle_multiplier)
            return self._between(_cosine(position))
        decay_steps = max(1, self.total_steps - warmup)  # type: ignore[operator]
        progress = min(1.0, after_warmup / decay_steps)
        return self._between(_cosine(progress) if kind == "cosine" else 1.0 - progress)

    def multiplier(self, step: int) -> float:
        """lr(step) / peak: what `torch.optim.lr_scheduler.LambdaLR` expects."""
        return self.lr(step) / self.peak_learning_rate

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every param group's rate for the update after `step` steps; returns it."""
        rate = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    def lambda_lr(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A LambdaLR (e.g. for `deepspeed.initialize(lr_scheduler=...)`) following this schedule.

        The optimizer's param groups must have `lr` set to the peak rate; resume with the
        LambdaLR's own state_dict (its step count is all it holds).
        """
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.multiplier)

    def _between(self, fraction: float) -> float:
        """The rate `fraction` of the way from the minimum (0) up to the peak (1)."""
        low = self.spec.min_learning_rate
        return low + (self.peak_learning_rate - low) * fraction


def _cosine(progress: float) -> float:
    """Half a cosine from 1 (progress 0) down to 0 (progress 1)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _position_in_cycle(steps: int, first_cycle_steps: int, cycle_multiplier: float) -> float:
    """How far (0 to 1) `steps` after warmup is into its cosine cycle (cycles grow
    geometrically, so the loop runs only logarithmically many times)."""
    length = float(first_cycle_steps)
    if cycle_multiplier == 1.0:
        return (steps % first_cycle_steps) / length
    position = float(steps)
    while position >= length:
        position -= length
        length *= cycle_multiplier
    return position / length
