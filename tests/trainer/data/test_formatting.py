"""Formatted targets parse back into the same recipe, with or without newlines (T5 drops them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_trainer.data.formatting import format_pair, format_source
from recipe_trainer.data.records import Recipe
from recipe_trainer.recipe_text import parse_recipe_text

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


@pytest.fixture(scope="module")
def recipes(clean_sample) -> list[Recipe]:
    return clean_sample


def test_target_is_a_structured_recipe(recipes):
    _, target = format_pair(recipes[0], "seq2seq")
    lines = target.splitlines()
    assert lines[0] == "Title: No-Bake Nut Cookies"
    assert lines[1] == "Ingredients:" and lines[2] == "- 1 c. firmly packed brown sugar"
    steps = lines[lines.index("Steps:") + 1 :]
    assert steps[0].startswith("1. In a heavy 2-quart saucepan") and steps[-1].startswith(f"{len(steps)}. ")


@pytest.mark.parametrize("join", ["\n", " "], ids=["with newlines", "without newlines"])
def test_every_sample_target_parses_back_to_its_recipe(recipes, join):
    for recipe in recipes:
        _, target = format_pair(recipe, "seq2seq")
        parsed = parse_recipe_text(join.join(target.split("\n")))
        assert parsed.title == recipe.title, recipe.row
        assert parsed.steps == recipe.directions, recipe.row
        assert [i.replace("-", " ").split() for i in parsed.ingredients] == [
            i.replace("-", " ").split() for i in recipe.ingredients
        ], recipe.row  # an inner " - " is written "-"


def test_source_names_the_dish_and_its_ingredients(recipes):
    source, _ = format_pair(recipes[0], "seq2seq")
    assert source == (
        "Write a recipe for No-Bake Nut Cookies. Ingredients: brown sugar, milk, vanilla, nuts, butter, "
        "bite size shredded rice biscuits."
    )
    without_ner = Recipe("Toast", ("1 slice bread",), ())
    assert format_source(without_ner) == "Write a recipe for Toast. Ingredients: 1 slice bread."
    assert format_source(Recipe("Toast", (), ())) == "Write a recipe for Toast."


def test_causal_prompt_is_newline_terminated_and_target_unchanged(recipes):
    source, target = format_pair(recipes[0], "seq2seq")
    prompt, causal_target = format_pair(recipes[0], "causal")
    assert prompt == source + "\n" and causal_target == target


def test_prebuilt_pairs_pass_through():
    recipe = Recipe("Tea", (), (), pair=("Make tea, please.", "Title: Tea"))
    assert format_pair(recipe, "seq2seq") == ("Make tea, please.", "Title: Tea")
    assert format_pair(recipe, "causal") == ("Make tea, please.\n", "Title: Tea")


def test_prompt_names_each_ingredient_once_in_first_seen_order():
    recipe = Recipe(
        "Italian Chicken",
        ("1 tsp. italian seasoning", "2 chicken breasts", "1 tsp. Italian seasoning"),
        ("Season the chicken.",),
        ner=("italian seasoning", "chicken breasts", "Italian  Seasoning", "salt", "chicken breasts"),
    )
    source, _ = format_pair(recipe, "seq2seq")
    assert (
        source == "Write a recipe for Italian Chicken. Ingredients: italian seasoning, chicken breasts, salt."
    )
    without_ner = Recipe("Toast", ("1 slice bread", "1 Slice  bread", "butter"), ())
    assert format_source(without_ner) == "Write a recipe for Toast. Ingredients: 1 slice bread, butter."


def test_no_sample_prompt_repeats_an_ingredient(recipes):
    for recipe in recipes:
        source, _ = format_pair(recipe, "seq2seq")
        names = source.split(" Ingredients: ", 1)[1].rstrip(".").split(", ")
        assert len({n.casefold() for n in names}) == len(names), recipe.row
