"""Recipe text in the training target format, split back into its parts, and the word helpers
every recipe score shares (`quality`, `plausibility`, `data.scoring`, `data.cleaning`).

The text is expected in the format of `recipe_trainer.data.formatting`:

    Title: <dish>  Ingredients: - <line> - <line>  Steps: 1. <step> 2. <step>

Newlines are optional: T5's tokenizer drops them, so sections are found by their markers,
ingredients by their "- " bullets and steps by their running numbers (1., 2., 3. ... in order, so
"bake 1 1/2 hours. 2. Cool" splits right while "350." inside a step does not). Pure Python.
"""

from __future__ import annotations

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


_ASIDE = re.compile(r"\([^)]*\)|[,;].*$|\sor\s.*$")  # "(12 oz.)", ", chopped", " or margarine"


@lru_cache(maxsize=1 << 16)
def ingredient_name(ingredient: str) -> str:
    """The name of what an ingredient line uses, as RecipeNLG's NER column gives it ("1 c. firmly
    packed brown sugar" -> "brown sugar"): its words before any comma or parenthesis, without
    amounts, units and preparation words. "" when nothing is left."""
    return " ".join(w for w in words(_ASIDE.sub("", ingredient)) if w not in _NOT_NAMES)


@lru_cache(maxsize=1 << 16)
def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oes") or word.endswith("ches") or word.endswith("shes"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word
