"""`recipe-train compare`: noise must read as noise, and a real improvement as one."""

from __future__ import annotations

import json

import pytest
from checkpoint_fixtures import SAMPLE_CSV, one_torch_thread, t5_checkpoints
from recipe_trainer.cli import main
from recipe_trainer.evaluation.bootstrap import paired_bootstrap

FAST = ["--samples", "8", "--max-new-tokens", "32", "--seed", "5"]
GENERATION = ("quality", "rouge_l", "bleu")


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _compare(a, b, tmp_path, report: str) -> dict:
    out = tmp_path / "comparison.json"
    args = ["compare", str(a), str(b), "--data", str(SAMPLE_CSV), *FAST, "--output", str(out)]
    assert main([*args, "--report", str(tmp_path / report)]) == 0
    return json.loads(out.read_text())


def test_a_checkpoint_against_itself_differs_by_exactly_zero(tmp_path, capsys):
    checkpoint = t5_checkpoints().trained
    comparison = _compare(checkpoint, checkpoint, tmp_path, "self.md")

    for name, row in comparison["metrics"].items():
        assert row["difference"] == 0.0, name
    for name in GENERATION:
        interval = comparison["metrics"][name]["interval"]
        assert (interval["low"], interval["high"], interval["excludes_zero"]) == (0.0, 0.0, False)
    assert "95% CI" in capsys.readouterr().out
    report = (tmp_path / "self.md").read_text()
    assert report.count("| reference | A | B |") == 8
    assert comparison["diversity"]["a"] == comparison["diversity"]["b"]
    assert set(comparison["diversity"]["a"]) == {"unique_steps", "self_bleu"}
    assert "- B unique_steps: generated" in report


def test_trained_beats_untrained_beyond_noise_and_the_report_shows_both(tmp_path):
    fixtures = t5_checkpoints()
    comparison = _compare(fixtures.untrained, fixtures.trained, tmp_path, "report.html")
    metrics = comparison["metrics"]

    assert metrics["loss"]["difference"] < 0  # B (trained) has the lower validation loss
    assert metrics["rouge_l"]["interval"]["excludes_zero"] and metrics["rouge_l"]["interval"]["low"] > 0
    assert metrics["bleu"]["interval"]["low"] > 0
    html = (tmp_path / "report.html").read_text()
    sample = comparison["samples"][0]
    assert html.startswith("<!doctype html>") and html.count("<th>reference</th><th>A</th><th>B</th>") == 8
    assert sample["b"].replace("\n", "<br>")[:30] in html  # the generated recipes themselves are there


def test_bootstrap_interval_recovers_a_known_shift_and_is_seeded():
    scores_a = [0.1 * (i % 7) for i in range(40)]
    noisy_b = [a + 0.05 + 0.2 * ((i * 13) % 5 - 2) for i, a in enumerate(scores_a)]

    shifted = paired_bootstrap(scores_a, [a + 0.3 for a in scores_a])
    noisy = paired_bootstrap(scores_a, noisy_b, seed=1)

    assert shifted.difference == pytest.approx(0.3) and shifted.low == pytest.approx(0.3)
    assert noisy.low < noisy.difference < noisy.high and not noisy.excludes_zero
    assert noisy == paired_bootstrap(scores_a, noisy_b, seed=1)


def test_report_needs_a_markdown_or_html_name(tmp_path, capsys):
    checkpoint = t5_checkpoints().trained
    assert main(["compare", str(checkpoint), str(checkpoint), "--report", str(tmp_path / "r.pdf")]) == 2
    assert ".md or .html" in capsys.readouterr().err


def test_a_base_model_against_its_fine_tune_shows_both_recipes(tmp_path, capsys):
    """CKPT_A may be the model itself, as spec.model.name names it: it is evaluated with the
    fine-tune's config on the same recipes, and the first held-out prompt is shown with both
    recipes and their quality scores."""
    fixtures = t5_checkpoints()
    comparison = _compare(fixtures.full_model_dir, fixtures.trained, tmp_path, "base.md")
    assert comparison["a"] == str(fixtures.full_model_dir)
    assert comparison["metrics"]["loss"]["difference"] != 0.0, "the adapter changed the model"
    assert "interval" in comparison["metrics"]["quality"]
    out = capsys.readouterr().out
    assert "a held-out prompt" in out and out.count("quality score:") == 2
    assert comparison["samples"][0]["b"][:20] in out
