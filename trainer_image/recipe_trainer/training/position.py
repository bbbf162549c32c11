"""Where a run is, as its checkpoints save it: the training position and the early-stopping state.

Both are plain data (saved in trainer_state.json, `checkpoint_layout`), so a resumed run continues
from exactly the step, epoch position, best validation loss and patience it stopped at.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EarlyStopping:
    """Validation-loss early stopping (`spec.validation.earlyStopping`), state_dict-able."""

    patience: int
    min_delta: float
    best: float | None = None
    bad_validations: int = 0

    def update(self, loss: float) -> bool:
        """Record a validation loss; True when it is a new best."""
        if self.best is None or loss < self.best - self.min_delta:
            self.best, self.bad_validations = loss, 0
            return True
        self.bad_validations += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_validations >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_validations = state["best"], int(state["bad_validations"])


@dataclass
class TrainingPosition:
    """Where training is (step, epoch position, best and last checkpoints); saved in
    trainer_state.json under "progress"."""

    step: int = 0
    epochs_completed: int = 0
    micro_batches_in_epoch: int = 0
    best_step: int | None = None
    last_validation_step: int | None = None
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    nonfinite_steps: int = 0
    last_evaluation: dict = field(default_factory=dict)
