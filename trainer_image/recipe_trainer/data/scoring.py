"""Quality and difficulty of a clean recipe.

Why: the curriculum trains on easy recipes first and raises a quality threshold over training,
so both numbers must be cheap (2.2M recipes), deterministic and explainable.

Quality, in [0, 1], is the one recipe score of the project: `recipe_trainer.quality.recipe_quality`
("overall") of the recipe written as the model's target text (`formatting.format_target`), the same
function validation, `eval`, `compare`, `score` and the ablation report. A recipe the curriculum
admits is therefore one the validation score would also rate; the score's definition, its
sub-scores and its measured power to tell real recipes from corrupted ones are in quality.py and
docs/benchmarks.md. About 0.3 ms per recipe on one core.

Difficulty, in [0, 1]: 0.5 min(ingredients / 20, 1) + 0.5 min(steps / 15, 1), so a 20-ingredient,
15-step recipe is as hard as it gets and a 3-ingredient, 1-step one is near 0.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from ..quality import recipe_quality
from .formatting import format_target
from .records import Recipe

HARD_INGREDIENTS, HARD_STEPS = 20, 15


def quality_score(recipe: Recipe) -> float:
    """The recipe score's "overall" for this recipe as a training target, in [0, 1]."""
    return recipe_quality(format_target(recipe.title, recipe.ingredients, recipe.directions))["overall"]


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
