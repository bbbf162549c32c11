"""Quality separates real, complete recipes from weak and junk ones; difficulty follows size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.loading import iter_raw_rows
from recipe_trainer.data.records import Recipe
from recipe_trainer.data.scoring import difficulty_score, quality_score, score_recipe

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


@pytest.fixture(scope="module")
def sample() -> dict[str, Recipe]:
    recipes, _ = clean_recipes(iter_raw_rows(SAMPLE))
    return {recipe.title: score_recipe(recipe) for recipe in recipes}


def test_hand_picked_real_recipes_score_high(sample):
    for title in ("No-Bake Nut Cookies", "Creamy Corn", "Jewell Ball'S Chicken"):
        assert sample[title].quality >= 0.8, title


def test_real_rows_without_instructions_score_low(sample):
    # Real RecipeNLG rows whose "directions" are a remark, not steps.
    assert sample["Monster Cookies"].directions == ("Makes lots of cookies!",)  # "!!!" normalised
    for title in ("Monster Cookies", "Summer Chicken"):
        assert sample[title].quality <= 0.5, title


def test_junk_scores_below_every_hand_picked_real_recipe(sample):
    junk = [
        Recipe("Stuff", ("stuff", "things"), ("whatever",)),
        Recipe(
            "Cake", ("flour", "sugar"), ("See www.example.com for the recipe.", "See www.example.com again.")
        ),
        Recipe("Soup", ("water",), ("Boil.", "Boil.")),
    ]
    floor = min(sample[t].quality for t in ("No-Bake Nut Cookies", "Creamy Corn", "Jewell Ball'S Chicken"))
    for recipe in junk:
        assert quality_score(recipe) < 0.5 < floor, recipe.title


def test_each_signal_moves_the_score_the_documented_way(sample):
    recipe = sample["Creamy Corn"]
    no_amounts = replace(recipe, ingredients=tuple(i.split(" ", 1)[1] for i in recipe.ingredients))
    assert quality_score(no_amounts) < quality_score(recipe)
    no_verbs = replace(recipe, directions=tuple("The result is nice and warm." for _ in recipe.directions))
    assert quality_score(no_verbs) < quality_score(recipe)
    with_url = replace(recipe, directions=(*recipe.directions, "More at http://example.com."))
    assert quality_score(with_url) == pytest.approx(quality_score(recipe) / 2, abs=0.06)


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
