"""bench/quality_metric.py cannot rot: each corruption changes the recipe it applies to, the skips
are counted, and the table has a row per corruption type (on 40 recipes, in a second)."""

from __future__ import annotations

import json
import random
import statistics

from bench_scripts import load_bench_script
from recipe_trainer import step_positions
from recipe_trainer.plausibility import normalized_step_words


def _bench():
    return load_bench_script("quality_metric")


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


def test_the_shipped_step_positions_are_the_tune_half_fit():
    """recipe_trainer/step_positions.json is exactly what `--fit-step-positions` writes: fitted on
    the tune half only (the held-out table stays honest), never edited by hand."""
    bench = _bench()
    shipped = json.loads(step_positions.TABLE_FILE.read_text())
    assert shipped == bench.fitted_step_positions(bench.SAMPLE)
    assert shipped["positions"]["preheat"][0] < 0.2 < 0.8 < shipped["positions"]["serve"][0]


def test_held_out_recipes_run_forward_by_the_learned_places_and_their_shuffles_do_not():
    """The table generalizes to recipes it never saw: the held-out half's steps mostly agree with
    their words' usual places, the same steps shuffled do not."""
    bench = _bench()
    rng = random.Random(0)
    real, shuffled = [], []
    for parts in bench.load_recipes(bench.SAMPLE, "held-out"):
        broken = bench.shuffled_steps((parts[0], list(parts[1]), list(parts[2])), [], rng)
        if broken is None:
            continue
        real.append(step_positions.forwardness(normalized_step_words(parts[2])))
        shuffled.append(step_positions.forwardness(normalized_step_words(broken[2])))
    assert len(real) > 400
    assert statistics.median(real) >= 0.4 and statistics.median(shuffled) <= 0.1
    assert bench.auc(real, shuffled) >= 0.85
