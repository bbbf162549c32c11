"""Does a well-formatted recipe make sense? The checks `recipe_quality` adds to its format checks.

Why: a model learns the format (sections, bullets, numbered steps, verbs) in a few dozen steps, and
a score of the format alone then rates "1 c. eggs, 1 c. Frango" as highly as a real recipe.
`bench/quality_metric.py` measures each check against seeded corruptions of real recipes.

Each check returns a score in [0, 1], 1.0 when nothing is wrong (or nothing can be judged), and
falls by a fixed factor per problem it finds, so one clear problem costs a real share of the
overall score and two cost more. Problems real recipes almost never show cost most (CLEAR_FACTOR
0.2); cues real recipes often show too cost less (0.75-0.92):

* quantities (clear): per ingredient line, the amount is in range for its unit (no "350 c. flour":
  at most 16 cups, 24 tablespoons, 16 teaspoons, 20 lb, 128 oz, 60 of a countable thing), a
  countable food ("eggs", "potatoes", "chicken breasts") is not measured by volume unless cut up
  or canned ("1 c. chopped apple" is fine; onions are left out: "1/2 c. onion" is common in real
  recipes), no size or count unit after a volume unit ("2 c. large onions", "2 c. bunches
  broccoli"); and the lines do not all carry the same amount ("1 c." x 3 or more).
* ingredients_listed (0.5 each): foods the cooking steps use that no ingredient line names
  (water, salt, pepper, ice, oil excepted: real recipes take them for granted; a step that serves
  or garnishes, or says "if desired", may name what the list leaves out). With no list at all,
  every food the steps cook counts: a story that names its foods in passing is no recipe.
* ingredients_used (0.92 each): ingredient lines the steps never name, unless the steps name
  ingredients as a group ("mix all together", "the remaining ingredients", "seasonings"); pantry
  lines (salt, sugar, flour, spices) excepted.
* step_order: steps in cooking order: ingredients first named in roughly the order they are listed
  and steps' stage cues (preheat, combine, assemble, cook, finish) mostly forward (each a factor
  0.25 + share of forward pairs, at most 1); the steps' words in the places real recipes put
  them (`step_positions`, a table learned from real recipes: below a Kendall's tau of 0.2, about
  10% per 0.1); "preheat"/"grease" not after the first third,
  "serve"/"garnish" not before the last third, "remaining"/"mixture"/"again" not in the first step,
  no first step opening with "Add"/"Bake"/"Pour", no last step opening with "Preheat"/"Mix" (0.75
  each).
* temperatures_times (clear): degrees between 90 and 550 (F or C), at most 600 minutes and 72 hours.
* title_agreement: the foods the title names appear in the ingredients or steps (0.5 each), and
  some word of the title does (0.9: fanciful names, "Puppy Chow", are real too).
* intact (clear): no step twice, the last step ends a sentence (not cut off mid-step), and no step
  carries a web or e-mail address (scraped page furniture: "See www... for the recipe").
* prompt_adherence (only with a prompt): the prompt's ingredients are used, and no ingredient line
  brings a main ingredient (meat, fish) the prompt did not ask for.
The factors were chosen on the "tune" half of the bundled sample (bench/quality_metric.py --half
tune); docs/benchmarks.md reports the held-out half.
Pure Python: the data pipeline scores every recipe of a 2.2M-recipe corpus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

from . import step_positions
from .recipe_text import ParsedRecipe, ingredient_names, singular, words

PROBLEM_FACTOR = 0.5  # each problem found halves a check's score
# Problems real recipes almost never show (an absurd amount or oven, a step twice, a cut-off text)
# cost more: they are near-certain signs of a broken recipe.
CLEAR_FACTOR = 0.2
# Order cues, each a factor by how much more often it showed in shuffled copies than in the real
# recipes of the tune half (real vs shuffled, of 440): a first step opening "Add"/"Bake"/"Pour" 10
# vs 166, a last step opening "Preheat"/"Mix"/"In" 10 vs 101, "serve" before the last third 6 vs
# 54, "mixture"/"remaining" in the first step 7 vs 33, "preheat" after the first third 7 vs 26.
ORDER_CUE_FACTORS = {
    "opens_with_a_continuing_word": 0.4,
    "ends_with_an_opening_word": 0.5,
    "serves_early": 0.5,
    "refers_back_first": 0.6,
    "preheats_late": 0.7,
}
TITLE_FACTOR = 0.9  # no word of the title in the recipe: fanciful names are real too
# Real recipes often list a line the steps fold into "the dry ingredients": ingredients_used costs
# little per hit. Measured on the tune half: it still fires on 16% of real recipes, and at 0.75 or
# 0.6 a hit its own AUC rose by at most 0.04 while the real median fell to 0.75-0.85 and every other
# type's AUC with it. A food cooked but not listed is rarer in real recipes (13%) and costs half.
UNLISTED_FACTOR, UNUSED_FACTOR = 0.5, 0.92

# Foods a step may name; a shipped list, so the score needs no model and no corpus.
FOODS = frozenset(
    """flour sugar butter egg milk cheese salt pepper oil shortening vanilla soda yeast honey syrup
    molasses chocolate cocoa pecan walnut almond peanut raisin coconut oat oatmeal rice pasta noodle
    macaroni spaghetti tortilla chicken beef pork ham bacon sausage turkey steak fish salmon tuna
    shrimp crab onion garlic celery carrot potato tomato mushroom corn bean pea broccoli cabbage
    spinach lettuce cucumber zucchini squash pumpkin apple banana lemon lime orange strawberry
    blueberry cherry peach pear pineapple cranberry grape rhubarb broth ketchup mustard mayonnaise
    vinegar wine beer worcestershire cinnamon nutmeg ginger oregano basil thyme parsley paprika
    cumin dill sage rosemary jello gelatin marshmallow yogurt buttermilk cornstarch cornmeal
    avocado olive pimento jalapeno salsa bouillon cheddar parmesan mozzarella ricotta velveeta
    cracker graham pudding catsup mayo maraschino cayenne cauliflower chive raspberry apricot
    horseradish marjoram cilantro pepperoni sesame artichoke applesauce caper tabasco rum
    bourbon brandy sherry tarragon caraway eggplant asparagus kale beet radish leek shallot
    scallion prune fig mango kiwi melon cantaloupe watermelon plum blackberry nectarine tofu lentil
    chickpea barley couscous pretzel cornflake popcorn oyster clam scallop lobster cod halibut trout
    catfish venison veal lamb duck meatball salami bologna lard walnut hazelnut cashew pistachio
    macadamia""".split()  # noqa: SIM905
)
# Words a recipe writes for one another: "butter" in a step for "1 stick oleo" in the list.
SAME_FOOD = {"margarine": "butter", "oleo": "butter", "hamburger": "beef", "jello": "gelatin"}
# Steps that name a food as a serving suggestion or an option, not as something cooked.
ASIDE_CUES = frozenset(["serve", "served", "serving", "garnish", "desired", "optional", "choice", "like"])
# Steps that use listed lines without naming them ("mix all together", "the dry ingredients").
GROUP_WORDS = frozenset(
    [
        "all",
        "ingredient",
        "together",
        "everything",
        "rest",
        "remaining",
        "other",
        "seasoning",
        "spice",
        "vegetable",
    ]
)
TAKEN_FOR_GRANTED = frozenset({"water", "salt", "pepper", "ice", "oil", "shortening"})
# Lines real recipes list and then fold into "dry ingredients" or "seasonings" without naming.
PANTRY = frozenset(
    [
        "salt",
        "pepper",
        "sugar",
        "flour",
        "water",
        "vanilla",
        "soda",
        "powder",
        "cinnamon",
        "nutmeg",
        "ginger",
        "clove",
        "spice",
        "allspice",
    ]
)
MAIN_INGREDIENTS = frozenset(
    [
        "chicken",
        "beef",
        "pork",
        "ham",
        "bacon",
        "sausage",
        "turkey",
        "steak",
        "hamburger",
        "fish",
        "salmon",
        "tuna",
        "shrimp",
        "crab",
        "lamb",
    ]
)
# Foods counted, not measured: "2 eggs", never "2 c. eggs" (the last name word of the line).
COUNTABLE = frozenset(
    [
        "egg",
        "breast",
        "thigh",
        "drumstick",
        "wing",
        "chop",
        "fillet",
        "filet",
        "tortilla",
        "bun",
        "bagel",
        "muffin",
        "lemon",
        "lime",
        "loaf",
        "potato",
        "tomato",
        "apple",
        "banana",
        "orange",
        "carrot",
        "avocado",
        "peach",
        "pear",
        "zucchini",
        "cucumber",
        "chicken",
    ]
)
SIZES = frozenset(["large", "medium", "small", "big"])
# Count units: a volume unit before one of these measures a count twice ("2 c. bunches broccoli").
COUNT_UNITS = frozenset(
    """bunch bunche packet package pkg cube strip qt quart roll bar can box envelope slice head
    stalk rib piece sq square jar bottle loaf""".split()  # noqa: SIM905
)
# Title words that say nothing about which dish it is.
TITLE_WORDS_ANY_DISH = frozenset(
    """aunt uncle mom mother grandma granny nana dad best easy quick favorite delight delicious
    special good great old fashioned homemade style the and with for new famous super simple
    surprise supreme deluxe cake cookie pie bread salad soup casserole dip fudge candy bar punch
    stew sauce dessert dressing pudding torte dinner supper brunch recipe crock pot microwave low
    fat free bake baked fried layer layered cream creamy hot cold frozen sweet sour""".split()  # noqa: SIM905
)
CUT_UP = frozenset(
    """chopped diced sliced mashed cubed grated shredded crushed minced cooked pureed canned dehydrated frozen ground
    crumbled juice peeled cut white whites yolk yolks substitute""".split()  # noqa: SIM905
)
# Unit -> most of it an ingredient line may plausibly hold.
UNIT_LIMITS = {
    **dict.fromkeys(("c", "cup", "cups"), 16),
    **dict.fromkeys(("tbsp", "tablespoon", "tablespoons", "tbs", "t"), 24),
    **dict.fromkeys(("tsp", "teaspoon", "teaspoons"), 16),
    **dict.fromkeys(("lb", "lbs", "pound", "pounds"), 20),
    **dict.fromkeys(("oz", "ounce", "ounces"), 128),
}
VOLUME_UNITS = frozenset(
    ("c", "cup", "cups", "tbsp", "tablespoon", "tablespoons", "tsp", "teaspoon", "teaspoons")
)
MAX_COUNT = 60
FIRST_CUES = frozenset(["preheat", "grease"])
LAST_CUES = frozenset(["serve", "serves", "garnish", "enjoy", "yield", "yields", "makes"])
NOT_FIRST_CUES = frozenset(["remaining", "mixture", "again"])
# Words that continue a recipe, not open it, and words that open one, not end it.
CONTINUING = frozenset(
    [
        "add",
        "bake",
        "pour",
        "sprinkle",
        "drain",
        "serve",
        "remove",
        "top",
        "fold",
        "return",
        "continue",
        "frost",
    ]
)
OPENING = frozenset(["preheat", "in", "combine", "mix", "grease"])
# The order of a recipe's stages, by a step's first cue word: prepare, combine, assemble, cook, finish.
STAGES = (
    "preheat grease",
    "mix combine cream beat blend whisk sift dissolve melt chop dice peel wash soak",
    "pour spread place put transfer spoon layer roll shape form fill drop press arrange",
    "bake broil fry simmer boil roast grill microwave",
    "cool chill refrigerate cut slice frost serve garnish store makes yield",
)
STAGE_OF = {word: stage for stage, cue_words in enumerate(STAGES) for word in cue_words.split()}
# The learned order signal (step_positions): real recipes' tau has median 0.6 and p10 0.2 on the
# tune half; below 0.2 each 0.1 of tau costs about 10%. Chosen by fitting the table on one half of
# the tune half and measuring on the other: shuffled steps' AUC 0.80 -> 0.84, no other type's down
# by more than 0.015 (steeper or higher settings gained at most 0.03 more for shuffles and cost the
# other types up to 0.03 each).
USUAL_PLACES_STEEPNESS, USUAL_PLACES_TAU = 1.0, 0.2
ORDER_FLOOR = 0.25  # an order factor never falls below this, a fully reversed sequence's

_ADDRESS = re.compile(r"https?://|www\.|\S@\S+\.[a-z]{2,}", re.I)  # a web or e-mail address
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)(?:\s+(\d+)/(\d+)|/(\d+))?\s*([A-Za-z]+)?")
_DEGREES = re.compile(r"\b(\d{2,5})\s*(?:°|degrees?\b|deg\b)", re.I)
_DURATION = re.compile(r"\b(\d{1,5})\s*(?:to\s*\d+\s*)?(minutes?|mins?|hours?|hrs?)\b", re.I)
_PROMPT_INGREDIENTS = re.compile(r"Ingredients?:\s*(.+?)\.?\s*$", re.I | re.S)


def check_recipe(recipe: ParsedRecipe, prompt: str | None = None) -> dict[str, float]:
    """The named plausibility scores of a parsed recipe (see the module docstring)."""
    step_words = normalized_step_words(recipe.steps)
    step_vocabulary = {w for ws in step_words for w in ws}
    names = [frozenset(map(food_word, ingredient_names(line))) for line in recipe.ingredients]
    listed = set().union(*names) if names else set()
    scores = {
        "quantities": _quantities(recipe.ingredients),
        "ingredients_listed": _ingredients_listed(step_words, listed),
        "ingredients_used": _ingredients_used(names, step_vocabulary, step_words),
        "step_order": _step_order(names, step_words),
        "temperatures_times": _temperatures_times(recipe.steps),
        "title_agreement": _title_agreement(recipe.title, listed | step_vocabulary),
        "intact": _intact(recipe.steps),
    }
    if prompt is not None:
        scores["prompt_adherence"] = prompt_adherence(prompt, names, listed | step_vocabulary)
    return scores


def normalized_step_words(steps: Sequence[str]) -> list[list[str]]:
    """Each step's words as the checks (and the fitted step positions) compare them."""
    return [[food_word(w) for w in words(step)] for step in steps]


@lru_cache(maxsize=1 << 16)
def food_word(word: str) -> str:
    """Singular, and one name for foods written several ways ("oleo", "margarine": "butter")."""
    word = singular(word)
    return SAME_FOOD.get(word, word)


@lru_cache(maxsize=1 << 16)  # ingredient lines repeat across a corpus
def implausible_amount(line: str) -> bool:
    """An amount out of range for its unit, or a countable food measured by volume."""
    match = _AMOUNT.match(line)
    if not match:
        return False
    whole, numerator, denominator, over = match.group(1, 2, 3, 4)
    amount = float(whole) + (int(numerator) / int(denominator) if numerator and int(denominator) else 0)
    if over and int(over):
        amount = float(whole) / int(over)
    unit = (match.group(5) or "").lower()
    if unit in UNIT_LIMITS:
        if amount > UNIT_LIMITS[unit]:
            return True
        if unit in VOLUME_UNITS:
            head = re.split(r"[,(;]| or ", line[match.end() :])[0]
            names = words(head)
            if names and names[0] in SIZES and "curd" not in names:
                return True  # "2 c. large onions": a size is for things counted
            if names and singular(names[0]) in COUNT_UNITS:
                return True
            return bool(names) and singular(names[-1]) in COUNTABLE and CUT_UP.isdisjoint(words(line))
        return False
    return amount > MAX_COUNT


def _quantities(ingredients: tuple[str, ...]) -> float:
    score = CLEAR_FACTOR ** sum(implausible_amount(line) for line in ingredients)
    amounts = [" ".join(line.split()[:2]).lower() for line in ingredients if _AMOUNT.match(line)]
    if len(amounts) >= 3 and len(amounts) == len(ingredients) and len(set(amounts)) == 1:
        score *= CLEAR_FACTOR**2  # every line "1 c.": copied, not measured
    return score


def _ingredients_listed(step_words: list[list[str]], listed: set[str]) -> float:
    """Foods the cooking steps use that no line lists. A step with a serving or optional cue
    ("serve with crackers", "roll in pecans if desired") may name what the list leaves out."""
    cooking = {w for ws in step_words if ASIDE_CUES.isdisjoint(ws) for w in ws}
    unlisted = (cooking & FOODS) - listed - TAKEN_FOR_GRANTED
    return UNLISTED_FACTOR ** len(unlisted)


def _ingredients_used(
    names: list[frozenset[str]], step_vocabulary: set[str], step_words: list[list[str]]
) -> float:
    if not names or not step_words or _refers_to_all(step_words):
        return 1.0
    unused = sum(1 for n in names if n and n.isdisjoint(step_vocabulary) and n.isdisjoint(PANTRY))
    return UNUSED_FACTOR**unused


def _refers_to_all(step_words: list[list[str]]) -> bool:
    """The steps name ingredients as a group ("mix all together", "add the next 3 ingredients",
    "the seasonings"), so a listed line they never name is no sign of a wrong list."""
    return any(not GROUP_WORDS.isdisjoint(ws) for ws in step_words)


def _step_order(names: list[frozenset[str]], step_words: list[list[str]]) -> float:
    n = len(step_words)
    if n < 2:
        return 1.0
    first_mention = []
    for ingredient in names:
        at = next((i for i, ws in enumerate(step_words) if ingredient.intersection(ws)), None)
        if at is not None:
            first_mention.append(at)
    stages = [s for s in map(_stage, step_words) if s is not None]
    score = _order_factor(first_mention) * _order_factor(stages) * _usual_places_factor(step_words)
    first, last = step_words[0], step_words[-1]
    cues = {
        "opens_with_a_continuing_word": bool(first) and first[0] in CONTINUING,
        "ends_with_an_opening_word": bool(last) and last[0] in OPENING,
        "serves_early": any(
            i / (n - 1) < 0.66 and LAST_CUES.intersection(ws[:3]) for i, ws in enumerate(step_words)
        ),
        "refers_back_first": bool(NOT_FIRST_CUES.intersection(first)),
        "preheats_late": any(
            i / (n - 1) > 0.34 and FIRST_CUES.intersection(ws) for i, ws in enumerate(step_words)
        ),
    }
    for cue, found in cues.items():
        if found:
            score *= ORDER_CUE_FACTORS[cue]
    return score


def _usual_places_factor(step_words: list[list[str]]) -> float:
    """Costs nothing while the steps' words come about where real recipes put them (`step_positions`:
    Kendall's tau at least USUAL_PLACES_TAU, as for most real recipes), less the further below."""
    tau = step_positions.forwardness(step_words)
    if tau is None:
        return 1.0
    return min(1.0, math.exp(USUAL_PLACES_STEEPNESS * (tau - USUAL_PLACES_TAU)))


def _stage(step_words: list[str]) -> int | None:
    """The cooking stage a step's first cue word names (`STAGES`), None without one."""
    return next((STAGE_OF[w] for w in step_words[:4] if w in STAGE_OF), None)


def _order_factor(positions: list[int]) -> float:
    """1.0 when a sequence (first mentions, stages) runs mostly forward, less the more pairs run
    backward; sequences with fewer than 3 ordered pairs say nothing."""
    pairs = [(a, b) for k, a in enumerate(positions) for b in positions[k + 1 :] if a != b]
    if len(pairs) < 3:
        return 1.0
    concordant = sum(a < b for a, b in pairs) / len(pairs)
    return min(1.0, ORDER_FLOOR + concordant)


def _temperatures_times(steps: tuple[str, ...]) -> float:
    problems = 0
    for step in steps:
        problems += sum(not 90 <= int(m.group(1)) <= 550 for m in _DEGREES.finditer(step))
        for match in _DURATION.finditer(step):
            limit = 72 if match.group(2).lower().startswith("h") else 600
            problems += int(match.group(1)) > limit
    return CLEAR_FACTOR**problems


def _intact(steps: tuple[str, ...]) -> float:
    if not steps:
        return 1.0
    repeats = len(steps) - len({step.lower() for step in steps})
    cut_off = steps[-1].rstrip()[-1:] not in ".!)"
    addresses = sum(bool(_ADDRESS.search(step)) for step in steps)
    return CLEAR_FACTOR ** (repeats + cut_off + addresses)


def _title_agreement(title: str, content: set[str]) -> float:
    """A problem per food the title names that the recipe never uses, and one more when no word
    of the title (but the `TITLE_WORDS_ANY_DISH`, "Aunt Mary's Best ...") appears in the recipe."""
    title_words = {food_word(w) for w in words(title) if len(w) > 2}
    score = PROBLEM_FACTOR ** len(title_words & FOODS - content)
    telling = title_words - TITLE_WORDS_ANY_DISH
    if telling and telling.isdisjoint(content):
        score *= TITLE_FACTOR  # fanciful names ("Puppy Chow", "Forever Amber") are real too
    return score


def prompt_adherence(prompt: str, names: list[frozenset[str]], content: set[str]) -> float:
    """Share of the prompt's ingredients the recipe names, halved if it brings a main ingredient
    (meat, fish) the prompt did not list; 1.0 for a prompt without an ingredient list."""
    match = _PROMPT_INGREDIENTS.search(prompt)
    if not match:
        return 1.0
    asked = [ingredient_names(item) for item in match.group(1).split(",")]
    asked = [a for a in asked if a]
    if not asked:
        return 1.0
    used = sum(1 for a in asked if not a.isdisjoint(content)) / len(asked)
    asked_words = set().union(*asked) | {singular(w) for w in words(prompt)}
    invented = (set().union(*names) if names else set()) & MAIN_INGREDIENTS - asked_words
    return used * (PROBLEM_FACTOR if invented else 1.0)
