"""The train/validation split is a stable function of each recipe, whatever the order or reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_api.v1alpha1 import DatasetSpec
from recipe_trainer.data.records import Recipe
from recipe_trainer.data.split import load_splits, split_of, split_recipes

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


@pytest.fixture(scope="module")
def recipes(clean_sample) -> list[Recipe]:
    return clean_sample


def rows(split):
    return {name: [r.row for r in side] for name, side in split.items()}  # titles repeat; rows do not


def test_split_is_the_same_in_any_order_and_on_every_run(recipes):
    forward = rows(split_recipes(recipes, 0.1))
    backward = rows(split_recipes(reversed(recipes), 0.1))
    assert sorted(forward["validation"]) == sorted(backward["validation"])
    assert forward == rows(split_recipes(recipes, 0.1))


def test_fraction_is_respected_and_sides_partition_the_recipes(recipes):
    split = rows(split_recipes(recipes, 0.1))
    assert 0.07 * len(recipes) <= len(split["validation"]) <= 0.13 * len(recipes)
    assert len(split["train"]) + len(split["validation"]) == len(recipes)
    assert not set(split["train"]) & set(split["validation"])
    assert rows(split_recipes(recipes, 0.0))["validation"] == []


def test_a_larger_fraction_only_adds_validation_recipes(recipes):
    small = {r.row for r in recipes if split_of(r, 0.05) == "validation"}
    large = {r.row for r in recipes if split_of(r, 0.2) == "validation"}
    assert small < large


def test_sides_can_be_read_in_either_order(recipes):
    split = split_recipes(recipes, 0.1)
    validation_first = [r.row for r in split["validation"]] + [r.row for r in split["train"]]
    assert sorted(validation_first) == sorted(r.row for r in recipes)


def test_load_splits_cleans_scores_caps_and_reports():
    splits, report = load_splits(DatasetSpec(path=str(SAMPLE), validationFraction=0.1, maxRecipes=500))
    train, validation = list(splits["train"]), list(splits["validation"])
    assert len(train) + len(validation) == 500
    assert all(0 < r.quality <= 1 and 0 < r.difficulty <= 1 for r in train + validation)
    assert report["kept"] >= 500 and report["rows"] == report["kept"] + report.dropped_total


def test_worker_processes_give_the_same_recipes_and_report():
    spec = DatasetSpec(path=str(SAMPLE), validationFraction=0.1)
    results = []
    for workers in (1, 2):
        splits, report = load_splits(spec, workers=workers)
        results.append(({name: list(side) for name, side in splits.items()}, report))
    assert results[0] == results[1]
    assert results[0][1]["rows"] == 999
