"""Where in a recipe each word tends to come: a step-order signal learned from real recipes.

Why: hand-picked order cues ("preheat" first, "serve" last) see only the shuffles that move one
of a dozen words. Every cooking word has a usual place ("drain" after "brown", "frost" after
"cool"), and real RecipeNLG recipes show it: per word, the mean relative position (0 the first
step, 1 the last) of the steps that use it. A recipe whose steps' usual places run forward is in
cooking order; a shuffled one is not.

The table is fitted on the "tune" half of the bundled sample only (`bench/quality_metric.py
--fit-step-positions` writes it), so the held-out half of the benchmark stays honest; a test checks
that the shipped file is exactly what that command produces. Pure Python: a dict lookup per word.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

TABLE_FILE = Path(__file__).with_name("step_positions.json")
# A word seen k times has its mean position pulled toward the middle as if seen PRIOR_COUNT more
# times there: a word met once or twice says little about where it belongs.
PRIOR_COUNT = 3
MIN_COUNT = 2  # words seen fewer times are left out of the shipped table


def fit(recipes: Iterable[Sequence[Sequence[str]]]) -> dict[str, list[float]]:
    """word -> [mean relative position, steps seen in], from recipes given as their steps' words.
    Recipes of one step say nothing about order and are skipped."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for steps in recipes:
        if len(steps) < 2:
            continue
        last = len(steps) - 1
        for index, step_words in enumerate(steps):
            for word in set(step_words):
                totals[word] = totals.get(word, 0.0) + index / last
                counts[word] = counts.get(word, 0) + 1
    return {
        word: [round((totals[word] + PRIOR_COUNT * 0.5) / (count + PRIOR_COUNT), 4), count]
        for word, count in sorted(counts.items())
        if count >= MIN_COUNT
    }


@lru_cache(maxsize=1)
def shipped_table() -> dict[str, tuple[float, float]]:
    """The shipped table as word -> (position - 0.5, weight): a word seen more often weighs more."""
    positions = json.loads(TABLE_FILE.read_text())["positions"]
    return {word: (mean - 0.5, math.log1p(count)) for word, (mean, count) in positions.items()}


def forwardness(steps: Sequence[Sequence[str]]) -> float | None:
    """Kendall's tau between the steps' order and their words' usual places: 1.0 when every later
    step's words usually come later, -1.0 when reversed; None with fewer than two steps."""
    if len(steps) < 2:
        return None
    table = shipped_table()
    places = []
    for step_words in steps:
        known = [table[word] for word in set(step_words) if word in table]
        weight = sum(w for _, w in known)
        places.append(sum(offset * w for offset, w in known) / weight if weight else 0.0)
    pairs = [(a, b) for k, a in enumerate(places) for b in places[k + 1 :]]
    return sum((a < b) - (a > b) for a, b in pairs) / len(pairs)
