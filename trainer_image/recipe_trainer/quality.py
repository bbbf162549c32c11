"""Recipe quality of a text: how much a (generated) recipe looks like a usable recipe.

Used on model output at validation, by `recipe-train generate/eval`, and (through
`parse_recipe_text` and the word lists) by the data pipeline's scoring. Pure Python, no model.

The text is expected in the training target format (see `recipe_trainer.data.formatting`):

    Title: <dish>  Ingredients: - <line> - <line>  Steps: 1. <step> 2. <step>

Newlines are optional: T5's tokenizer drops them, so sections are found by their markers,
ingredients by their "- " bullets and steps by their running numbers (1., 2., 3. ... in order, so
"bake 1 1/2 hours. 2. Cool" splits right while "350." inside a step does not).

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
  completeness): a text that is not a recipe in the expected format, or that loops, scores low
  however good its other parts look. (This was "overall" until the score was measured against
  corrupted real recipes, docs/benchmarks.md: it rated "1 c. eggs, 1 c. Frango" 0.93.)
* the plausibility checks of `recipe_trainer.plausibility`, each in [0, 1]: quantities,
  ingredients_listed, ingredients_used, step_order, temperatures_times, title_agreement, intact,
  and prompt_adherence when the prompt is given.
* overall = form x the product of the plausibility checks: a well-formatted recipe loses a fixed
  share per thing that does not make sense (an absurd amount, a 3500 degree oven, a step twice).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

TITLE_MARKER = "Title:"
INGREDIENTS_MARKER = "Ingredients:"
STEPS_MARKER = "Steps:"

# Capitalised as written by formatting, so "follow the package directions: ..." in a step is no marker.
_MARKERS = re.compile(r"\b(Title|Ingredients|Steps|TITLE|INGREDIENTS|STEPS)\s*:")
_LINE_BULLET = re.compile(r"^\s*[-*\u2022]\s*")  # any bullet starting a line
_DASH_BULLET = re.compile(r"(?:^|\s)-\s+")  # the "- " bullets of a text without newlines
_WORD = re.compile(r"[a-z]+")

# Word lists as text: one frozenset each, easy to read and extend.
COOKING_VERBS = frozenset(
    """add allow arrange bake baste beat blanch blend boil braise break bring broil brown brush chill
    chop coat combine cook cool core cover cream crumble crush cube cut debone deglaze dice dip
    discard dissolve divide dot drain dredge drizzle drop dust fill flip fold form freeze frost fry
    garnish glaze grate grease grill grind heat knead layer line marinate mash measure melt microwave
    mince mix moisten pat peel place poach pound pour preheat prepare press process puree put reduce
    refrigerate remove repeat reserve return roast roll rub saute scald scramble season sear serve
    set shake shape shred sift simmer skim slice soak soften spoon spray spread sprinkle squeeze
    steam stir strain stuff thaw thicken thin toast top toss transfer trim turn uncover wash whip
    whisk wrap""".split()  # noqa: SIM905
)
UNITS = frozenset(
    """c cup cups tbsp tablespoon tablespoons tbs tsp teaspoon teaspoons oz ounce ounces lb lbs pound
    pounds g gram grams kg ml l liter liters litre quart quarts qt pint pints pt gallon gal can cans
    pkg pkgs package packages box jar jars bottle stick sticks clove cloves slice slices bunch pinch
    dash envelope carton container bag head sprig sprigs stalk stalks piece pieces inch""".split()  # noqa: SIM905
)
_QUANTITY = re.compile(
    r"^\s*(?:\d|[\u00bc-\u00be\u2150-\u215e]|(?:a|an|one|two|three|four|five|six|half|few|several)\b)",
    re.IGNORECASE,
)
_NOT_NAMES = UNITS | frozenset(
    """and or of the a an to for with into in on at as about large small medium fresh chopped diced sliced
    minced cut up finely thinly firmly packed softened melted beaten drained crushed grated shredded
    ground whole cooked uncooked frozen canned optional taste plus more each inch size pieces
    divided room temperature lightly well""".split()  # noqa: SIM905
)
OUT_OF_ORDER_FACTOR = 0.4  # format score kept when the text does not open with Title: ... in order
_ALL_INGREDIENTS = re.compile(r"\b(all|remaining|other|rest of the|everything|ingredients)\b", re.I)


@dataclass(frozen=True)
class ParsedRecipe:
    """The sections of a recipe text. `markers` lists the section markers found, in order."""

    title: str
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]
    markers: tuple[str, ...]
    numbered: bool  # steps carried running numbers 1..n
    starts_with_title: bool  # nothing but whitespace before the title marker


def parse_recipe_text(text: str) -> ParsedRecipe:
    """Split a recipe text into title, ingredients and steps, with or without newlines."""
    sections: dict[str, str] = {}
    found = list(_MARKERS.finditer(text))
    markers = []
    for i, match in enumerate(found):
        name = match.group(1).lower()
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        markers.append(name)
        sections.setdefault(name, text[match.end() : end])
    title = " ".join(sections.get("title", "").split())
    ingredients = _split_ingredients(sections.get("ingredients", ""))
    steps, numbered = split_steps(sections.get("steps", ""))
    starts_with_title = bool(found) and markers[0] == "title" and not text[: found[0].start()].strip()
    return ParsedRecipe(title, ingredients, steps, tuple(markers), numbered, starts_with_title)


def _split_ingredients(section: str) -> tuple[str, ...]:
    if "\n" in section.strip():
        parts = [_LINE_BULLET.sub("", line) for line in section.splitlines()]
    else:
        parts = _DASH_BULLET.split(section)
    items = (" ".join(part.split()) for part in parts)
    return tuple(item for item in items if item)


def split_steps(section: str) -> tuple[tuple[str, ...], bool]:
    """Steps by running numbers "1." "2." ... (each searched after the previous one); without
    numbers, by lines. Returns (steps, whether they were numbered)."""
    starts = []
    position, number = 0, 1
    while True:
        match = re.compile(rf"(?:^|\s){number}[.)]\s").search(section, position)
        if not match:
            break
        starts.append((match.start(), match.end()))
        position, number = match.end(), number + 1
    if not starts:
        lines = (" ".join(line.split()) for line in section.splitlines())
        return tuple(line for line in lines if line), False
    steps = []
    for i, (_, body_start) in enumerate(starts):
        body_end = starts[i + 1][0] if i + 1 < len(starts) else len(section)
        step = " ".join(section[body_start:body_end].split())
        if step:
            steps.append(step)
    return tuple(steps), True


def words(text: str) -> list[str]:
    """Lower-case alphabetic words."""
    return _WORD.findall(text.lower())


def has_quantity(ingredient: str) -> bool:
    """Whether an ingredient line starts with an amount ("1 c.", "1/2", "½", "two", "a pinch")."""
    return bool(_QUANTITY.match(ingredient))


def has_unit(ingredient: str) -> bool:
    return not UNITS.isdisjoint(words(ingredient))


def has_cooking_verb(step: str) -> bool:
    return not COOKING_VERBS.isdisjoint(words(step))


@lru_cache(maxsize=1 << 16)  # ingredient lines repeat across a corpus ("1 tsp. salt")
def ingredient_names(ingredient: str) -> frozenset[str]:
    """Content words of an ingredient line, singular-ish: what a step would call it."""
    return frozenset(singular(w) for w in words(ingredient) if len(w) > 2 and w not in _NOT_NAMES)


@lru_cache(maxsize=1 << 16)
def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oes") or word.endswith("ches") or word.endswith("shes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def recipe_quality(text: str, prompt: str | None = None) -> dict[str, float]:
    """Named scores in [0, 1] of a recipe text (see the module docstring), with "overall".
    With the prompt it was written for, "prompt_adherence" joins the plausibility checks."""
    from .plausibility import check_recipe  # it builds on this module's parser

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
    scores["form"] = scores["format"] * scores["fluency"] * weighted
    checks = check_recipe(recipe, prompt)
    scores.update(checks)
    scores["overall"] = scores["form"] * math.prod(checks.values())
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
