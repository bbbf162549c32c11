"""The pipeline's quality is the project's one recipe score; difficulty follows size.

The curriculum admits recipes by this number, so it must be the score validation and `score`
report (not a second formula), and its default thresholds must keep real recipes and drop junk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from recipe_api.v1alpha1 import QualityThreshold
from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.formatting import format_target
from recipe_trainer.data.loading import iter_raw_rows
from recipe_trainer.data.records import Recipe
from recipe_trainer.data.scoring import difficulty_score, quality_score, score_recipe
from recipe_trainer.quality import recipe_quality

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"
REAL = ("No-Bake Nut Cookies", "Creamy Corn", "Jewell Ball'S Chicken")
END = QualityThreshold().end  # the threshold the curriculum reaches by default


@pytest.fixture(scope="module")
def sample() -> dict[str, Recipe]:
    recipes, _ = clean_recipes(iter_raw_rows(SAMPLE))
    return {recipe.title: score_recipe(recipe) for recipe in recipes}


def test_the_pipeline_scores_with_the_recipe_score_of_validation_and_score(sample):
    for title in (*REAL, "Monster Cookies"):
        recipe = sample[title]
        text = format_target(recipe.title, recipe.ingredients, recipe.directions)
        assert recipe.quality == recipe_quality(text)["overall"], title


def test_hand_picked_real_recipes_pass_the_default_thresholds(sample):
    for title in REAL:
        assert sample[title].quality >= 2 * END, title


def test_a_real_row_without_instructions_is_dropped_by_the_default_end_threshold(sample):
    assert sample["Monster Cookies"].directions == ("Makes lots of cookies!",)  # "!!!" normalised
    assert sample["Monster Cookies"].quality < END


def test_the_default_thresholds_keep_most_real_recipes(sample):
    kept = sum(recipe.quality >= END for recipe in sample.values()) / len(sample)
    assert 0.9 <= kept < 1.0  # the QualityThreshold docstring says 96% of this sample


def test_junk_scores_below_the_end_threshold_and_every_hand_picked_real_recipe(sample):
    junk = [
        Recipe("Stuff", ("stuff", "things"), ("whatever",)),
        Recipe(
            "Cake", ("flour", "sugar"), ("See www.example.com for the recipe.", "See www.example.com again.")
        ),
        Recipe("Soup", ("water",), ("Boil.", "Boil.")),
    ]
    floor = min(sample[t].quality for t in REAL)
    for recipe in junk:
        assert quality_score(recipe) < END < floor, recipe.title


def test_implausible_copies_of_a_real_recipe_score_below_the_end_threshold(sample):
    recipe = sample["Creamy Corn"]
    assert quality_score(recipe) == 1.0
    all_one_cup = replace(
        recipe, ingredients=tuple("1 c. " + i.split(" ", 2)[-1] for i in recipe.ingredients)
    )
    with_url = replace(recipe, directions=(*recipe.directions, "More at http://example.com."))
    too_hot = replace(recipe, directions=(*recipe.directions, "Bake at 3500 degrees for 20 minutes."))
    for copy in (all_one_cup, with_url, too_hot):
        assert quality_score(copy) <= END


def test_scores_stay_in_range_on_the_whole_sample(sample):
    for recipe in sample.values():
        assert 0.0 <= recipe.quality <= 1.0 and 0.0 <= recipe.difficulty <= 1.0


def test_difficulty_grows_with_ingredients_and_steps():
    def sized(n_ingredients, n_steps):
        return Recipe(
            "R", tuple(f"{i} c. x" for i in range(n_ingredients)), tuple("Mix." for _ in range(n_steps))
        )

    assert difficulty_score(sized(3, 2)) < difficulty_score(sized(8, 2)) < difficulty_score(sized(8, 9))
    assert difficulty_score(sized(20, 15)) == 1.0 == difficulty_score(sized(40, 30))
