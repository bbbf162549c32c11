"""Checkpoints a user can rely on: complete ones load back (the adapter with PEFT, as generate /
export do), and a crash in the middle of writing one leaves the previous one to resume from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recipe_api.contract import checkpoint_step_dir
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.run_log import read_run_log
from recipe_trainer.training import checkpointing
from recipe_trainer.training.recipe import TrainingRecipe

from .conftest import free_port, trainer_config


def run(config, monkeypatch, resume_from=None) -> TrainingRecipe:
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    recipe = TrainingRecipe(config, resume_from=resume_from)
    recipe.setup()
    recipe.summary = recipe.train()
    return recipe


@pytest.mark.usefixtures("single_process")
def test_checkpoint_round_trip_and_crash_during_write(tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    config = trainer_config(tmp_path, training={"maxSteps": 4}, checkpoint={"everySteps": 2, "keepLast": 1})
    first = run(config, monkeypatch)
    root = Path(config.runtime.checkpoint_dir)

    # complete checkpoints, pruned to the last one (no validation improved: no best kept besides)
    newest = layout.newest_checkpoint(root)
    assert newest.name == checkpoint_step_dir(4)
    state = json.loads((newest / layout.STATE_FILE).read_text())
    assert state["step"] == 4
    assert (newest / layout.TOKENIZER_DIR / "tokenizer.json").is_file()
    assert (newest / layout.CONFIG_FILE).read_text() == config.to_yaml()
    kept = {p.name for p in layout.complete_checkpoints(root)}
    best = layout.best_checkpoint(root)
    assert kept == {newest.name} | ({best.name} if best else set())

    # the adapter reloads onto the saved base and computes what the trained model computes
    base = AutoModelForSeq2SeqLM.from_pretrained(root / layout.BASE_MODEL_DIR)
    reloaded = PeftModel.from_pretrained(base, newest / layout.MODEL_DIR).eval()
    trained = first.engine.module.eval()
    ids = torch.tensor([[5, 6, 7, 8, 1]])
    with torch.no_grad():
        expected = trained(input_ids=ids, decoder_input_ids=ids).logits
        actual = reloaded(input_ids=ids, decoder_input_ids=ids).logits
    torch.testing.assert_close(actual, expected)
    first.cleanup()

    # a crash after part of the next checkpoint was written...
    write_state = checkpointing.write_trainer_state
    crashing = [True]

    def crash_once(checkpoint, state):
        if crashing.pop() if crashing else False:
            raise OSError("disk full")
        write_state(checkpoint, state)

    monkeypatch.setattr(checkpointing, "write_trainer_state", crash_once)
    longer = trainer_config(tmp_path, training={"maxSteps": 6}, checkpoint={"everySteps": 2, "keepLast": 2})
    with pytest.raises(OSError, match="disk full"):
        run(longer, monkeypatch)
    assert (root / (layout.TMP_PREFIX + checkpoint_step_dir(6)) / layout.MODEL_DIR).is_dir()
    assert layout.newest_checkpoint(root).name == checkpoint_step_dir(4)  # ...is not a checkpoint

    # ...and the next run resumes from the previous one and cleans the leftover up
    resumed = run(longer, monkeypatch)
    starts = [e for e in read_run_log(tmp_path) if e["event"] == "start"]
    assert starts[-1]["resumed_from_step"] == 4
    assert resumed.summary.step == 6
    assert layout.newest_checkpoint(root).name == checkpoint_step_dir(6)
    assert not list(root.glob(layout.TMP_PREFIX + "step-*"))
    resumed.cleanup()

    # a named checkpoint wins over the newest one (`recipe-train train --resume-from PATH`)
    again = run(longer, monkeypatch, resume_from=str(root / checkpoint_step_dir(4)))
    assert again.resumed_from_step == 4
    again.cleanup()
