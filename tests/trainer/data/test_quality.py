"""The quality metric scores real held-out recipes high and shuffled or garbled text low."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_scripts import load_bench_script
from recipe_api.v1alpha1 import DatasetSpec
from recipe_trainer import plausibility
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.split import load_splits
from recipe_trainer.plausibility import implausible_amount
from recipe_trainer.quality import recipe_quality

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"
NAMES = {
    "format",
    "ingredient_coherence",
    "instruction_quality",
    "completeness",
    "fluency",
    "form",
    "overall",
}
CHECKS = {
    "quantities",
    "ingredients_listed",
    "ingredients_used",
    "step_order",
    "temperatures_times",
    "title_agreement",
    "intact",
}


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    """Reference texts of the validation recipes: never used for tuning on the train side."""
    splits, _ = load_splits(DatasetSpec(path=str(SAMPLE), validationFraction=0.1))
    return [format_pair(recipe, "seq2seq")[1] for recipe in splits["validation"]]


def test_real_held_out_recipes_score_a_median_of_at_least_0_8(held_out):
    scores = [recipe_quality(text)["overall"] for text in held_out]
    assert len(scores) > 50
    assert sorted(scores)[len(scores) // 2] >= 0.8
    assert sum(score >= 0.4 for score in scores) >= 0.85 * len(scores)


def test_text_without_newlines_scores_the_same(held_out):
    for text in held_out:
        assert recipe_quality(" ".join(text.split())) == recipe_quality(text)


def test_shuffled_words_score_at_most_0_4(held_out):
    rng = random.Random(0)
    for text in held_out:
        words = text.split()
        rng.shuffle(words)
        assert recipe_quality(" ".join(words))["overall"] <= 0.4


def test_garbled_and_junk_text_score_at_most_0_4(held_out):
    rng = random.Random(1)
    for text in held_out:
        characters = list(text)
        rng.shuffle(characters)
        assert recipe_quality("".join(characters))["overall"] <= 0.4
    for junk in ("", "!!!!!!!!", "the the the the the", "Title: Title: Title: Steps: Steps:"):
        assert recipe_quality(junk)["overall"] <= 0.4


def test_degenerate_generations_lose_points(held_out):
    text = held_out[0]
    full = recipe_quality(text)
    truncated = recipe_quality(text[: len(text) - 7])  # cut mid-step
    assert truncated["completeness"] < full["completeness"]
    steps_at = text.index("Steps:")
    looping = text[:steps_at] + "Steps: " + " ".join(f"{n}. Stir well." for n in range(1, 9))
    assert recipe_quality(looping)["instruction_quality"] < full["instruction_quality"]
    plain = text.replace("Title:", "").replace("Ingredients:", "").replace("Steps:", "")
    assert recipe_quality(plain)["overall"] < 0.4


def test_word_loops_inside_a_well_formed_recipe_score_at_most_0_4(held_out):
    """What tiny or undertrained models write: markers, verbs and ingredients all present, but the
    steps loop ("... and pepper and pepper and pepper ...")."""
    for text in held_out[:30]:
        steps_at = text.index("Steps:")
        first_step = text[steps_at:].split("2.")[0].rstrip(". ")
        looping = f"{text[:steps_at]}{first_step} and pepper" + " and pepper" * 40 + ". 2. Serve."
        scores = recipe_quality(looping)
        assert scores["format"] == 1.0
        assert scores["overall"] <= 0.4, looping


def test_scores_are_named_and_in_range(held_out):
    scores = recipe_quality(held_out[0])
    assert set(scores) == NAMES | CHECKS
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())


REAL = """Title: Banana Bread
Ingredients:
- 1/2 c. butter
- 1 c. sugar
- 2 eggs
- 3 ripe bananas, mashed
- 2 c. flour
- 1 tsp. soda
Steps:
1. Preheat oven to 350°.
2. Cream butter and sugar; beat in eggs.
3. Stir in bananas, then flour and soda.
4. Pour into a greased loaf pan and bake for 60 minutes.
5. Cool before slicing."""


def test_a_real_recipe_scores_high_and_each_kind_of_nonsense_costs_it_half_or_more():
    real = recipe_quality(REAL)
    assert real["overall"] >= 0.9
    broken = {
        "quantities": REAL.replace("2 c. flour", "350 c. flour"),
        "temperatures_times": REAL.replace("350°", "3500°"),
        "intact": REAL.replace("5. Cool before slicing.", "5. Cool before slicing.\n6. Cool before slicing."),
        "title_agreement": REAL.replace("Banana Bread", "Chicken Soup"),
    }
    for check, text in broken.items():
        scores = recipe_quality(text)
        assert scores[check] <= 0.5, check
        assert scores["overall"] <= 0.5 * real["overall"], check


def test_the_readme_all_1_cup_recipe_scores_far_below_a_real_one():
    """The example bench/quality_metric.py reports (one copy of its text, there)."""
    scores = recipe_quality(_bench_readme_example())
    assert scores["quantities"] <= 0.25
    assert scores["overall"] < 0.3 < 0.9 <= recipe_quality(REAL)["overall"]


def _bench_readme_example() -> str:
    return load_bench_script("quality_metric").README_EXAMPLE


def test_prompt_adherence_counts_the_asked_ingredients_and_an_invented_main_one():
    prompt = "Write a recipe for Banana Bread. Ingredients: butter, sugar, eggs, bananas, flour, soda."
    assert recipe_quality(REAL, prompt)["prompt_adherence"] == 1.0
    assert "prompt_adherence" not in recipe_quality(REAL)
    asked_more = prompt.replace("soda.", "soda, walnuts, raisins.")
    assert recipe_quality(REAL, asked_more)["prompt_adherence"] == 0.75
    invented = REAL.replace("- 2 c. flour", "- 2 c. flour\n- 1 lb. bacon")
    assert recipe_quality(invented, prompt)["prompt_adherence"] == 0.5


def _steps_swapped(text: str) -> str:
    """Steps 2 and 3 swapped: no cue word moves, only the order ingredients are first used in."""
    two, three = "2. Cream butter and sugar; beat in eggs.", "3. Stir in bananas, then flour and soda."
    swapped = text.replace(two, "@").replace(three, "3." + two[2:]).replace("@", "2." + three[2:])
    assert swapped.index("2. Stir") < swapped.index("3. Cream")
    return swapped


def test_the_subtler_corruptions_each_cost_the_check_that_looks_for_them():
    """The bench's weak types, one case each: order, a counted food in cups, a food the steps cook
    but the list lacks, a title that names nothing of the recipe."""
    real = recipe_quality(REAL)
    broken = {
        "step_order": _steps_swapped(REAL),
        "quantities": REAL.replace("- 2 eggs", "- 2 c. eggs"),
        "ingredients_listed": REAL.replace("- 1 c. sugar\n", ""),
        "title_agreement": REAL.replace("Banana Bread", "Grandma's Wedding Surprise"),
    }
    for check, text in broken.items():
        scores = recipe_quality(text)
        assert scores[check] < real[check] == 1.0, check
        assert scores["overall"] < real["overall"], check
    assert implausible_amount("2 c. large marshmallows")  # a size is for things counted
    assert not implausible_amount("1 c. large curd cottage cheese")
    assert implausible_amount("2 c. bunches fresh broccoli")  # a count unit measured by volume
    assert not implausible_amount("1 tsp. cloves") and not implausible_amount("1 1/4 c. canned tomatoes")


def test_a_recipe_that_preheats_last_loses_half_its_order_score():
    """Cue words alone: the ingredients keep their order, the oven is heated after the bake."""
    steps = REAL.split("Steps:\n")[1].splitlines()
    moved = (
        REAL.split("Steps:\n")[0]
        + "Steps:\n"
        + "\n".join(f"{i}. {line.split('. ', 1)[1]}" for i, line in enumerate(steps[1:] + steps[:1], 1))
    )
    assert moved.rstrip().endswith("5. Preheat oven to 350°.")
    assert recipe_quality(moved)["step_order"] <= 0.5


def test_serving_suggestions_and_grouped_ingredients_are_not_problems():
    """Real recipes name a food only to serve it with, and use lines as "the dry ingredients"."""
    served = REAL.replace("5. Cool before slicing.", "5. Cool; serve with walnuts if desired.")
    assert recipe_quality(served)["ingredients_listed"] == 1.0
    cooked = REAL.replace("5. Cool before slicing.", "5. Cool; top with walnuts.")
    assert recipe_quality(cooked)["ingredients_listed"] < 1.0
    extra_line = REAL.replace("- 1 tsp. soda", "- 1 tsp. soda\n- 1 c. chopped dates")
    assert recipe_quality(extra_line)["ingredients_used"] < 1.0
    grouped = extra_line.replace("then flour and soda.", "then the remaining ingredients.")
    assert recipe_quality(grouped)["ingredients_used"] == 1.0


def _steps_reversed(text: str) -> str:
    head, steps = text.split("Steps:\n")
    lines = [line.split(". ", 1)[1] for line in steps.splitlines()]
    return head + "Steps:\n" + "\n".join(f"{i}. {line}" for i, line in enumerate(reversed(lines), 1))


def test_steps_out_of_their_words_usual_places_lose_order(monkeypatch):
    """The learned signal (step_positions) is part of step_order: a reversed recipe loses more
    than its cue words alone cost it, the real order nothing."""
    reversed_text = _steps_reversed(REAL)
    assert reversed_text.splitlines()[-1] == "5. Preheat oven to 350°."
    learned = recipe_quality(reversed_text)["step_order"]
    monkeypatch.setattr(plausibility, "USUAL_PLACES_STEEPNESS", 0.0)
    cues_only = recipe_quality(reversed_text)["step_order"]
    assert learned <= 0.5 * cues_only
    monkeypatch.undo()
    assert recipe_quality(REAL)["step_order"] == 1.0


def test_foods_cooked_without_any_ingredient_list_are_unlisted():
    """A story that names its foods in passing: every food it cooks counts as missing."""
    story = (
        "Title: Banana Bread\nSteps:\n1. Cream the butter and sugar, beat in the eggs, stir in the "
        "bananas, flour and soda, and bake for an hour."
    )
    scores = recipe_quality(story)
    assert scores["ingredients_listed"] <= 0.5**5
    assert scores["overall"] < 0.01
