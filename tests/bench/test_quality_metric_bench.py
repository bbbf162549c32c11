"""bench/quality_metric.py cannot rot: each corruption changes the recipe it applies to, the skips
are counted, and the table has a row per corruption type (on 40 recipes, in a second)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality_metric.py"


def _bench():
    spec = importlib.util.spec_from_file_location("quality_metric", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_corruption_changes_the_recipes_it_applies_to_and_counts_the_rest():
    bench = _bench()
    recipes = bench.load_recipes(bench.SAMPLE, "held-out")[:40]
    for name, corrupt in bench.CORRUPTIONS.items():
        rng = random.Random(name)
        applied = 0
        for k, parts in enumerate(recipes):
            broken = corrupt((parts[0], list(parts[1]), list(parts[2])), recipes[:k] + recipes[k + 1 :], rng)
            if broken is not None:
                applied += 1
                assert bench.text_of(broken) != bench.text_of(parts), name
        assert applied > 0, name
    result = bench.measure(recipes, seed=0)
    assert set(result["types"]) == set(bench.CORRUPTIONS)
    for row in result["types"].values():
        assert row["n"] + row["skipped"] == len(recipes) and 0.0 <= row["auc"] <= 1.0
    assert "| steps shuffled |" in bench.table(result)


def test_the_admitted_table_marks_the_curriculums_default_thresholds():
    table = _bench().admitted_table(_bench().SAMPLE)
    assert "(default start)" in table and "(default end)" in table
    assert table.splitlines()[0].startswith("clean recipes: 998;")
