"""The training loop as a user sees it: a NaN loss skips the step without moving the weights and
is counted; several in a row stop the run with a reason instead of training on garbage."""

from __future__ import annotations

import pytest
import torch
from recipe_api.contract import checkpoint_step_dir
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer import losses
from recipe_trainer.run_log import read_run_log
from recipe_trainer.training import forward
from recipe_trainer.training.metrics import TrainerMetrics
from recipe_trainer.training.recipe import (
    MAX_NONFINITE_STEPS_IN_A_ROW,
    EarlyStopping,
    TrainingDiverged,
    TrainingRecipe,
)
from safetensors.torch import load_file

from .conftest import trainer_config


@pytest.mark.usefixtures("single_process")
def test_nonfinite_losses_skip_steps_then_abort(tmp_path, monkeypatch):
    config = trainer_config(tmp_path, training={"maxSteps": 20}, checkpoint={"everySteps": 1, "keepLast": 20})
    recipe = TrainingRecipe(config)
    first_bad_step = 2  # steps 1..2 train normally, every later loss is NaN
    real_loss = losses.label_smoothed_cross_entropy

    def poisoned(logits, labels, smoothing=0.0, **kwargs):
        result = real_loss(logits, labels, smoothing, **kwargs)
        if recipe.progress.step >= first_bad_step and torch.is_grad_enabled():
            return losses.TokenLoss(sum=result.sum * float("nan"), tokens=result.tokens)
        return result

    # the training loop computes its loss through forward.batch_loss
    monkeypatch.setattr(forward, "label_smoothed_cross_entropy", poisoned)
    recipe.setup()
    with pytest.raises(TrainingDiverged, match=f"{MAX_NONFINITE_STEPS_IN_A_ROW} optimizer steps in a row"):
        recipe.train()

    steps = [e for e in read_run_log(tmp_path) if e["event"] == "step"]
    assert [e.get("skipped", False) for e in steps] == [False] * first_bad_step + [
        True
    ] * MAX_NONFINITE_STEPS_IN_A_ROW
    assert recipe.progress.nonfinite_steps == MAX_NONFINITE_STEPS_IN_A_ROW
    (metrics,) = [sink for sink in recipe.reporter.sinks if isinstance(sink, TrainerMetrics)]
    assert b"recipe_trainer_nonfinite_steps_total 5.0" in metrics.exposition()

    def adapter(step: int) -> dict[str, torch.Tensor]:
        return load_file(
            recipe.checkpoint_dir / checkpoint_step_dir(step) / layout.MODEL_DIR / "adapter_model.safetensors"
        )

    before, after = adapter(first_bad_step), adapter(first_bad_step + MAX_NONFINITE_STEPS_IN_A_ROW - 1)
    assert before.keys() == after.keys()
    for name in before:  # skipped steps left every weight as it was
        assert torch.equal(before[name], after[name]), name
    assert not all(torch.equal(before[n], adapter(1)[n]) for n in before)  # a good step does move them


@pytest.mark.parametrize(
    ("patience", "min_delta", "losses", "stops_after"),
    [
        (2, 0.0, [3.0, 2.5, 2.6, 2.7, 2.0], 4),  # two validations without a new best
        (2, 0.0, [3.0, 2.9, 2.8, 2.7], None),  # always improving
        (2, 0.5, [3.0, 2.8, 2.7], 3),  # improvements smaller than minDelta do not count
        (0, 0.0, [3.0, 4.0, 5.0, 6.0], None),  # patience 0: never stop early
    ],
)
def test_early_stopping(patience, min_delta, losses, stops_after):
    stopping = EarlyStopping(patience, min_delta)
    stopped = None
    for count, loss in enumerate(losses, start=1):
        stopping.update(loss)
        if stopping.should_stop:
            stopped = count
            break
    assert stopped == stops_after
    restored = EarlyStopping(patience, min_delta)
    restored.load_state_dict(stopping.state_dict())
    assert restored == stopping  # resumed runs keep counting where they were


@pytest.mark.usefixtures("single_process")
def test_validation_reports_the_samples_diversity_against_their_references(tmp_path):
    config = trainer_config(
        tmp_path,
        training={"maxSteps": 2},
        validation={"everySteps": 2, "maxBatches": 1, "samples": 3},
    )
    recipe = TrainingRecipe(config)
    recipe.setup()
    recipe.train()
    validations = [e for e in read_run_log(tmp_path) if e["event"] == "validation"]
    diversity = validations[-1]["diversity"]
    assert set(diversity) == {"unique_steps", "self_bleu"}
    for means in diversity.values():
        assert set(means) == {"generated", "references"} and 0.0 <= means["references"] <= 1.0
    assert "prompt_adherence" in validations[-1]["quality_scores"]  # scored with its prompt
