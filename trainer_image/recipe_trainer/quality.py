"""Recipe quality of a text: how much a (generated) recipe looks like a usable recipe.

Used on model output at validation, by `recipe-train eval`, `compare`, `score` and the ablation.
Pure Python, no model.

The text is expected in the training target format; `recipe_trainer.recipe_text` splits it into
title, ingredients and steps, with or without newlines.

Scores, each in [0, 1]:
* format: share of [title, ingredients and steps sections non-empty, steps numbered 1., 2., ...],
  times 0.4 unless the text opens with "Title:" and the three markers come once each, in order.
* ingredient_coherence: 0.6 x share of ingredients named again in the steps (any content word of
  the line; a step saying "all ingredients" counts for all) + 0.4 x share of ingredient lines with
  a quantity.
* instruction_quality: mean over steps of [has a cooking/action verb] and [reads as a sentence:
  3-80 words, starts with a capital or digit, ends in . ! or )], times the share of distinct
  steps (repetition loops score low).
* completeness: a title of 1-15 words, >= 2 ingredients, >= 2 steps, and the text ends with
  terminal punctuation (not cut off mid-step).
* fluency: distinct word bigrams / all word bigrams, mapped linearly from 0.5 (score 0) to 0.85
  (score 1). Generation loops ("and pepper and pepper", "13-inch 13-inch") keep the format and the
  verbs but repeat; every recipe of the bundled RecipeNLG sample has a ratio >= 0.83, a looping
  tiny-model output about 0.5.
* form = format x fluency x (0.35 ingredient_coherence + 0.4 instruction_quality + 0.25
  completeness): the old overall score, kept as a sub-score. (It was "overall" until the score was
  measured against corrupted real recipes, docs/benchmarks.md: it rated "1 c. eggs, 1 c. Frango" 0.93.)
* the plausibility checks of `recipe_trainer.plausibility`, each in [0, 1]: quantities,
  ingredients_listed, ingredients_used, step_order, temperatures_times, title_agreement, intact,
  and prompt_adherence when the prompt is given.
* overall = format^3 x min(1, fluency x (0.35 coherence + 0.4 instructions + 0.25 completeness)
  / 0.8) x the product of the plausibility checks.
  - format^3: every real recipe has format 1.0; a missing section or unnumbered steps is a clear
    sign of no recipe (prose scores 0.42 or less).
  - the form gate, min(1, .../0.8): real recipes' wording varies (a step without a verb, an
    ingredient the steps call otherwise: form < 1 for 76% of the tune half, p10 0.77), and at full
    weight that variation outweighed the problems the checks find; a text that loops or trails off
    still falls.
  - each plausibility check loses a share per problem it finds (an absurd amount, a 3500 degree
    oven, a step twice: 80% each; a food the steps cook but the list lacks: 50%).
  The constants (FORMAT_POWER, FORM_FULL and the factors in `plausibility`) were chosen on the
  "tune" half of the bundled sample; docs/benchmarks.md reports the other half.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .plausibility import check_recipe
from .recipe_text import (
    ParsedRecipe,
    has_cooking_verb,
    has_quantity,
    ingredient_names,
    parse_recipe_text,
    singular,
    words,
)

# Every real recipe has format 1.0; a missing section or unnumbered steps is a clear sign of no recipe.
FORMAT_POWER = 3
FORM_FULL = 0.8  # form at or above this costs the overall nothing (see the module docstring)
OUT_OF_ORDER_FACTOR = 0.4  # format score kept when the text does not open with Title: ... in order
_ALL_INGREDIENTS = re.compile(r"\b(all|remaining|other|rest of the|everything|ingredients)\b", re.I)


def recipe_quality(text: str, prompt: str | None = None) -> dict[str, float]:
    """Named scores in [0, 1] of a recipe text (see the module docstring), with "overall".
    With the prompt it was written for, "prompt_adherence" joins the plausibility checks."""
    recipe = parse_recipe_text(text)
    scores = {
        "format": _format_score(recipe),
        "ingredient_coherence": _coherence(recipe),
        "instruction_quality": _instruction_quality(recipe),
        "completeness": _completeness(recipe, text),
        "fluency": _fluency(text),
    }
    weighted = (
        0.35 * scores["ingredient_coherence"]
        + 0.4 * scores["instruction_quality"]
        + 0.25 * scores["completeness"]
    )
    content = scores["fluency"] * weighted
    scores["form"] = scores["format"] * content
    checks = check_recipe(recipe, prompt)
    scores.update(checks)
    gate = scores["format"] ** FORMAT_POWER * min(1.0, content / FORM_FULL)
    scores["overall"] = gate * math.prod(checks.values())
    return {name: round(value, 4) for name, value in scores.items()}


def _format_score(recipe: ParsedRecipe) -> float:
    checks = [bool(recipe.title), bool(recipe.ingredients), bool(recipe.steps), recipe.numbered]
    score = sum(checks) / len(checks)
    in_order = recipe.starts_with_title and recipe.markers == ("title", "ingredients", "steps")
    return score if in_order else OUT_OF_ORDER_FACTOR * score


def _coherence(recipe: ParsedRecipe) -> float:
    if not recipe.ingredients or not recipe.steps:
        return 0.0
    step_words = {singular(w) for step in recipe.steps for w in words(step)}
    steps_text = " ".join(recipe.steps)
    says_all = bool(_ALL_INGREDIENTS.search(steps_text))
    named = [ingredient_names(i) for i in recipe.ingredients]
    mentioned = [bool(names & step_words) or (says_all and bool(names)) for names in named]
    quantities = [has_quantity(i) for i in recipe.ingredients]
    return 0.6 * sum(mentioned) / len(mentioned) + 0.4 * sum(quantities) / len(quantities)


def _instruction_quality(recipe: ParsedRecipe) -> float:
    if not recipe.steps:
        return 0.0
    per_step = [(has_cooking_verb(step) + _reads_as_sentence(step)) / 2 for step in recipe.steps]
    distinct = len({step.lower() for step in recipe.steps}) / len(recipe.steps)
    return sum(per_step) / len(per_step) * distinct


LOOPING_BIGRAM_RATIO, FLUENT_BIGRAM_RATIO = 0.5, 0.85


def _fluency(text: str) -> float:
    """1.0 unless the text repeats itself (see the module docstring)."""
    tokens = words(text)
    bigrams = list(zip(tokens, tokens[1:], strict=False))
    if len(bigrams) < 2:
        return 1.0  # nothing to judge; format and completeness already score a stub low
    ratio = len(set(bigrams)) / len(bigrams)
    return min(1.0, max(0.0, (ratio - LOOPING_BIGRAM_RATIO) / (FLUENT_BIGRAM_RATIO - LOOPING_BIGRAM_RATIO)))


def _reads_as_sentence(step: str) -> bool:
    n_words = len(step.split())
    return 3 <= n_words <= 80 and (step[0].isupper() or step[0].isdigit()) and step.rstrip()[-1:] in ".!)"


def _completeness(recipe: ParsedRecipe, text: str) -> float:
    checks = [
        1 <= len(recipe.title.split()) <= 15,
        len(recipe.ingredients) >= 2,
        len(recipe.steps) >= 2,
        text.rstrip()[-1:] in ".!)",
    ]
    return sum(checks) / len(checks)


def score_samples(prompts: list[str], texts: list[str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Validation's view of generated recipes: each one's overall score against its prompt, and the
    mean of every numeric sub-score over them."""
    scores: dict[str, list[float]] = {}
    samples = []
    for prompt, text in zip(prompts, texts, strict=True):
        result = recipe_quality(text, prompt)
        samples.append({"prompt": prompt, "recipe": text, "quality": result.get("overall")})
        for name, value in result.items():
            if isinstance(value, int | float):
                scores.setdefault(name, []).append(float(value))
    return {name: sum(values) / len(values) for name, values in scores.items()}, samples
