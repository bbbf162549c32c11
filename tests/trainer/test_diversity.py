"""Set diversity: one template for every dish shows against the references' own spread."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_api.v1alpha1 import DatasetSpec
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.split import load_splits
from recipe_trainer.evaluation.diversity import diversity_lines, diversity_report
from recipe_trainer.set_diversity import per_recipe_diversity, set_diversity

SAMPLE = Path(__file__).parents[2] / "examples" / "data" / "recipenlg_sample_999.csv"
TEMPLATE = "Steps:\n1. Mix all ingredients together.\n2. Bake at 350° for 20 minutes.\n3. Serve hot."


@pytest.fixture(scope="module")
def references() -> list[str]:
    splits, _ = load_splits(DatasetSpec(path=str(SAMPLE), validationFraction=0.1))
    return [format_pair(recipe, "seq2seq")[1] for recipe in splits["validation"]][:16]


def test_one_template_for_every_dish_is_far_less_diverse_than_real_recipes(references):
    templated = [text.split("Steps:")[0] + TEMPLATE for text in references]
    report = diversity_report(templated, references)
    unique, bleu = report["unique_steps"], report["self_bleu"]
    assert unique["mean_b"] == 0.0 and unique["mean_a"] > 0.9
    assert unique["high"] < 0 and unique["excludes_zero"]
    assert bleu["mean_b"] == pytest.approx(1.0) and bleu["low"] > 0 and bleu["excludes_zero"]
    assert len(diversity_lines(report)) == 2


def test_the_references_against_themselves_differ_by_nothing(references):
    report = diversity_report(references, references)
    assert all(d["difference"] == 0.0 and not d["excludes_zero"] for d in report.values())


def test_a_step_shared_by_two_recipes_is_not_unique():
    texts = [
        "Steps:\n1. Chop onions.\n2. Serve hot.",
        "Steps:\n1. Boil pasta.\n2. Serve hot!",
        "Steps:\n1. Bake.",
    ]
    assert per_recipe_diversity(texts)["unique_steps"] == [0.5, 0.5, 1.0]


def test_validation_gets_both_means_without_an_interval(references):
    templated = [text.split("Steps:")[0] + TEMPLATE for text in references]
    means = set_diversity(templated, references)
    assert means["unique_steps"]["generated"] == 0.0 < means["unique_steps"]["references"]
