"""Paired bootstrap confidence intervals: is checkpoint B really better than A on these samples?

Both checkpoints generate for the same prompts, so each sample gives a pair of scores. Resampling
the *samples* (with replacement) and recomputing the mean difference B - A each time shows how much
the difference moves with the luck of which recipes were drawn; the percentile interval of those
resampled differences is the confidence interval (Efron & Tibshirani; Koehn 2004 for MT metrics).
An interval that excludes zero is an improvement (or regression) beyond sampling noise.

Seeded, so a report can be regenerated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    mean_a: float
    mean_b: float
    difference: float  # mean(b) - mean(a)
    low: float
    high: float
    confidence: float
    samples: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or below zero: a real difference."""
        return self.low > 0.0 or self.high < 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> PairedDifference:
    """Percentile bootstrap interval of mean(b - a) over paired per-sample scores."""
    scores_a = np.asarray(a, dtype=np.float64)
    scores_b = np.asarray(b, dtype=np.float64)
    if scores_a.shape != scores_b.shape or scores_a.ndim != 1 or scores_a.size == 0:
        raise ValueError(f"need two equally long, non-empty score lists (got {len(a)} and {len(b)})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = scores_b - scores_a
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(resamples, differences.size))
    resampled = differences[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return PairedDifference(
        mean_a=float(scores_a.mean()),
        mean_b=float(scores_b.mean()),
        difference=float(differences.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        samples=int(differences.size),
    )
