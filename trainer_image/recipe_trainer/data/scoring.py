"""Quality and difficulty of a clean recipe, from explicit signals.

Why: the curriculum trains on easy recipes first and raises a quality threshold over training,
so both numbers must be cheap (2.2M recipes), deterministic and explainable.

Quality, in [0, 1]:

    quality = (0.25 amounts + 0.15 step_count + 0.15 step_length + 0.20 verbs + 0.25 completeness)
              x 0.5 ** junk_signals

* amounts: mean over ingredient lines of 0.7 [starts with a quantity] + 0.3 [names a unit]
  ("1 c. sugar" 1.0, "2 eggs" 0.7, "salt" 0.0);
* step_count: 1.0 for 2-20 steps, 0.5 for a single step or more than 20;
* step_length: share of steps of 3-80 words;
* verbs: share of steps with a cooking verb (`recipe_trainer.recipe_text.COOKING_VERBS`);
* completeness: mean of [>= 2 ingredients], [title of 1-15 words], [at least half the ingredients
  named again in the steps, or the steps say "all ingredients"];
* junk_signals: how many of these hold: a URL or e-mail in the text, fewer than 6 words of
  directions in all, the same step twice.

Difficulty, in [0, 1]: 0.5 min(ingredients / 20, 1) + 0.5 min(steps / 15, 1), so a 20-ingredient,
15-step recipe is as hard as it gets and a 3-ingredient, 1-step one is near 0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import lru_cache

from ..recipe_text import COOKING_VERBS, has_quantity, has_unit, ingredient_names, singular, words
from .records import Recipe

WEIGHTS = {"amounts": 0.25, "step_count": 0.15, "step_length": 0.15, "verbs": 0.20, "completeness": 0.25}
JUNK_FACTOR = 0.5
HARD_INGREDIENTS, HARD_STEPS = 20, 15

_EMAIL = re.compile(r"\S@\S+\.[a-z]{2,}")
_SAYS_ALL = ("all ingredients", "remaining ingredients", "everything")


def quality_signals(recipe: Recipe) -> dict[str, float]:
    """Each signal of the quality formula, in [0, 1] (junk_signals is a count)."""
    ingredients, steps = recipe.ingredients, recipe.directions
    n_steps = len(steps)
    step_words = [words(step) for step in steps]  # once per step: the costly part of scoring
    lengths = [len(step.split()) for step in steps]
    amounts = sum(_amount(i) for i in ingredients) / max(1, len(ingredients))
    text = " ".join((*steps, *ingredients)).lower()
    junk = [_has_address(text), sum(lengths) < 6, len(set(steps)) < n_steps]
    return {
        "amounts": amounts,
        "step_count": 1.0 if 2 <= n_steps <= 20 else 0.5 if n_steps else 0.0,
        "step_length": sum(3 <= n <= 80 for n in lengths) / max(1, n_steps),
        "verbs": sum(not COOKING_VERBS.isdisjoint(w) for w in step_words) / max(1, n_steps),
        "completeness": (
            (len(ingredients) >= 2)
            + (1 <= len(recipe.title.split()) <= 15)
            + _ingredients_used(ingredients, step_words, text)
        )
        / 3,
        "junk_signals": float(sum(junk)),
    }


@lru_cache(maxsize=1 << 16)  # ingredient lines repeat across a corpus
def _amount(ingredient: str) -> float:
    return 0.7 * has_quantity(ingredient) + 0.3 * has_unit(ingredient)


def _has_address(lower_text: str) -> bool:
    """A URL or e-mail address: scraped page furniture, not a recipe."""
    if "http" in lower_text or "www." in lower_text:
        return True
    return "@" in lower_text and bool(_EMAIL.search(lower_text))


def _ingredients_used(ingredients: tuple[str, ...], step_words: list[list[str]], lower_text: str) -> bool:
    """At least half the ingredients named again in the steps, or the steps say "all ingredients"."""
    if any(phrase in lower_text for phrase in _SAYS_ALL):
        return True
    named = {singular(w) for ws in step_words for w in ws}
    used = sum(not ingredient_names(i).isdisjoint(named) for i in ingredients)
    return used * 2 >= len(ingredients)


def quality_score(recipe: Recipe) -> float:
    """The documented quality formula, in [0, 1]."""
    signals = quality_signals(recipe)
    base = sum(weight * signals[name] for name, weight in WEIGHTS.items())
    return round(min(1.0, max(0.0, base * JUNK_FACTOR ** signals["junk_signals"])), 4)


def difficulty_score(recipe: Recipe) -> float:
    """From ingredient and step counts, in [0, 1]."""
    ingredients = min(recipe.n_ingredients / HARD_INGREDIENTS, 1.0)
    steps = min(recipe.n_steps / HARD_STEPS, 1.0)
    return round(0.5 * ingredients + 0.5 * steps, 4)


def score_recipe(recipe: Recipe) -> Recipe:
    """The recipe with its quality and difficulty filled in."""
    return replace(recipe, quality=quality_score(recipe), difficulty=difficulty_score(recipe))


def score_recipes(recipes: Iterable[Recipe]) -> Iterator[Recipe]:
    return map(score_recipe, recipes)
