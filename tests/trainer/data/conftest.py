"""The bundled real RecipeNLG sample, loaded and cleaned once for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.loading import iter_raw_rows
from recipe_trainer.data.records import Recipe

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


@pytest.fixture(scope="session")
def clean_sample() -> list[Recipe]:
    clean, _ = clean_recipes(iter_raw_rows(SAMPLE))
    return list(clean)
