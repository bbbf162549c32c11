"""The quality metric scores real held-out recipes high and shuffled or garbled text low."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from recipe_api.v1alpha1 import DatasetSpec
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.split import load_splits
from recipe_trainer.quality import recipe_quality

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"
NAMES = {"format", "ingredient_coherence", "instruction_quality", "completeness", "fluency", "overall"}


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    """Reference texts of the validation recipes: never used for tuning on the train side."""
    splits, _ = load_splits(DatasetSpec(path=str(SAMPLE), validationFraction=0.1))
    return [format_pair(recipe, "seq2seq")[1] for recipe in splits["validation"]]


def test_real_held_out_recipes_score_at_least_0_8(held_out):
    scores = [recipe_quality(text)["overall"] for text in held_out]
    assert len(scores) > 50
    assert sum(score >= 0.8 for score in scores) >= 0.85 * len(scores)
    assert sorted(scores)[len(scores) // 2] >= 0.9


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
    assert set(scores) == NAMES
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())
