"""Curriculum learning: which recipes may be trained on at a given point of training, and in what order.

Why: a small model learns the recipe format faster from short, clean recipes first. The spec's
`curriculum.stages` cut training (by fraction, 0..1) into stages, each admitting recipes with at
most `maxIngredients` ingredients and `maxSteps` steps; independently a quality threshold rises
linearly from `qualityThreshold.start` at fraction 0 to exactly `qualityThreshold.end` at 1.0.

An empty eligible set never stalls training: the rules are relaxed step by step (first the
quality threshold, then the stage limits down to the easiest recipes there are), and each
relaxation is counted so the data report shows it.

`CurriculumSampler` walks one seeded permutation of all training recipes per epoch and yields the
recipes eligible at the current progress; an epoch is one pass over that permutation. Its state is
(epoch, position in the permutation), so a resumed run continues mid-epoch with the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from recipe_api.v1alpha1 import CurriculumSpec, CurriculumStage

_SCAN_CHUNK = 65536  # permutation positions examined at once when looking for eligible recipes


@dataclass(frozen=True)
class RecipeTraits:
    """What the curriculum needs to know of each training recipe, as aligned arrays."""

    n_ingredients: np.ndarray
    n_steps: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.quality)


class Curriculum:
    """The rules of the spec as pure functions of the training progress (a fraction in [0, 1])."""

    def __init__(self, spec: CurriculumSpec):
        self.spec = spec
        self.fallbacks = 0  # times an empty eligible set was relaxed

    def stage_index(self, progress: float) -> int:
        """0-based stage in force at `progress` (the last one past its end); 0 when disabled."""
        if not self.spec.enabled:
            return 0
        for index, stage in enumerate(self.spec.stages):
            if progress < stage.until:
                return index
        return len(self.spec.stages) - 1

    def stage(self, progress: float) -> CurriculumStage | None:
        return self.spec.stages[self.stage_index(progress)] if self.spec.enabled else None

    def quality_threshold(self, progress: float) -> float:
        """Linear from start (progress 0) to end (progress >= 1); 0 when the curriculum is off."""
        if not self.spec.enabled:
            return 0.0
        fraction = min(max(progress, 0.0), 1.0)
        threshold = self.spec.quality_threshold
        return threshold.start + (threshold.end - threshold.start) * fraction

    def eligible(self, traits: RecipeTraits, progress: float) -> np.ndarray:
        """Boolean mask of the recipes admitted at `progress`, never empty for non-empty data."""
        everything = np.ones(len(traits), dtype=bool)
        stage = self.stage(progress)
        if stage is None or len(traits) == 0:
            return everything
        within_stage = everything.copy()
        if stage.max_ingredients is not None:
            within_stage &= traits.n_ingredients <= stage.max_ingredients
        if stage.max_steps is not None:
            within_stage &= traits.n_steps <= stage.max_steps
        mask = within_stage & (traits.quality >= self.quality_threshold(progress))
        if mask.any():
            return mask
        self.fallbacks += 1
        if within_stage.any():
            return within_stage
        size = traits.n_ingredients + traits.n_steps
        return size == size.min()


class CurriculumSampler:
    """Yields indices of eligible training recipes for this rank, epoch after epoch.

    Every rank walks the same permutation (seeded by seed and epoch); the stream of eligible
    indices is dealt round-robin, so rank r gets items r, r + world_size, ... and all ranks get the
    same count up to the last round. Call `set_progress` as training advances.
    """

    def __init__(
        self, traits: RecipeTraits, curriculum: Curriculum, seed: int, rank: int = 0, world_size: int = 1
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.traits, self.curriculum, self.seed = traits, curriculum, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position, self.progress = 0, 0, 0.0
        self._permutation_epoch, self._permutation = -1, np.empty(0, dtype=np.int64)

    def set_progress(self, progress: float) -> None:
        self.progress = progress

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of all training recipes in `epoch`: the same on every rank and every run."""
        if epoch != self._permutation_epoch:
            generator = np.random.default_rng([self.seed, epoch])
            self._permutation, self._permutation_epoch = generator.permutation(len(self.traits)), epoch
        return self._permutation

    def take(self, count: int) -> list[int]:
        """Up to `count` eligible indices for this rank from the current epoch, advancing the
        position; fewer (possibly none) means the epoch is over: call `next_epoch`."""
        permutation = self.permutation(self.epoch)
        mask = self.curriculum.eligible(self.traits, self.progress)
        wanted = count * self.world_size
        found: list[np.ndarray] = []
        found_count, position = 0, self.position
        while found_count < wanted and position < len(permutation):
            chunk = permutation[position : position + _SCAN_CHUNK]
            hits = np.flatnonzero(mask[chunk])[: wanted - found_count]
            if found_count + len(hits) == wanted:
                position += int(hits[-1]) + 1
            else:
                position += len(chunk)
            found.append(chunk[hits])
            found_count += len(hits)
        self.position = position
        chosen = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        return chosen[self.rank :: self.world_size].tolist()

    def __iter__(self):
        """The rest of the current epoch, one index at a time (progress read as it goes)."""
        while indices := self.take(1):
            yield indices[0]

    @property
    def epoch_finished(self) -> bool:
        return self.position >= len(self.traits)

    def next_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "progress": self.progress,
            "fallbacks": self.curriculum.fallbacks,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.progress = float(state["progress"])
        self.curriculum.fallbacks = int(state["fallbacks"])
