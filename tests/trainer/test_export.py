"""`recipe-train export`: what ships must load with plain transformers and write the same recipes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from checkpoint_fixtures import gpt2_checkpoint, one_torch_thread, t5_checkpoints
from peft import PeftModel
from recipe_trainer.cli import main
from recipe_trainer.data.tokenizer import load_pretrained_tokenizer
from recipe_trainer.inference import generate_recipe, load_checkpoint, prompt_for
from recipe_trainer.training.checkpointing import directory_size
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

TITLES = ["Banana Bread", "Beef Stew", "Lemon Bars"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _recipes(model, tokenizer, task: str) -> list[str]:
    return [generate_recipe(model, tokenizer, prompt_for(t, [], task), max_new_tokens=40) for t in TITLES]


@pytest.mark.parametrize(
    ("which", "auto_class"), [("seq2seq", AutoModelForSeq2SeqLM), ("causal", AutoModelForCausalLM)]
)
def test_merged_export_loads_with_transformers_and_writes_the_same_recipes(which, auto_class, tmp_path):
    checkpoint = t5_checkpoints().trained if which == "seq2seq" else gpt2_checkpoint()
    loaded = load_checkpoint(checkpoint)
    expected = _recipes(loaded.model, loaded.tokenizer, loaded.task)

    assert main(["export", str(checkpoint), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    merged = auto_class.from_pretrained(tmp_path / "merged").eval()
    tokenizer = load_pretrained_tokenizer(str(tmp_path / "merged"))

    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    # a tiny model may end one title at once; the comparison needs some text to mean anything
    assert _recipes(merged, tokenizer, loaded.task) == expected and any(expected)
    ids = tokenizer(prompt_for(TITLES[0], [], loaded.task), return_tensors="pt").input_ids
    inputs = {"input_ids": ids, **({"decoder_input_ids": ids[:, :4]} if which == "seq2seq" else {})}
    with torch.no_grad():  # the same function, not just the same argmax
        assert torch.allclose(merged(**inputs).logits, loaded.model(**inputs).logits, atol=1e-5)


def test_adapter_export_is_small_and_loads_onto_its_base(tmp_path):
    checkpoint = t5_checkpoints().trained
    loaded = load_checkpoint(checkpoint)
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "adapter")]) == 0
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "merged"), "--merge"]) == 0

    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    base = AutoModelForSeq2SeqLM.from_pretrained(adapter_config["base_model_name_or_path"])
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()

    assert adapter_config["base_model_name_or_path"] == str(t5_checkpoints().full_model_dir)
    assert _recipes(reloaded, loaded.tokenizer, "seq2seq") == _recipes(
        loaded.model, loaded.tokenizer, "seq2seq"
    )
    assert directory_size(tmp_path / "adapter") < directory_size(tmp_path / "merged") / 2


def test_model_card_names_base_data_settings_and_metrics(tmp_path):
    checkpoint = tmp_path / "step-00000140"
    shutil.copytree(t5_checkpoints().trained, checkpoint)
    (checkpoint / "eval.json").write_text(
        json.dumps({"data": "/data/recipes.csv", "split": "validation", "samples": [{}] * 3,
                    "metrics": {"loss": 4.25, "rouge_l": 0.21}})
    )  # fmt: skip
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "out"), "--merge"]) == 0
    card = (tmp_path / "out" / "README.md").read_text()

    assert card.startswith("---\nlibrary_name: transformers")
    assert f"base model: `{t5_checkpoints().full_model_dir}`" in card
    assert "recipenlg_sample_999.csv" in card and "validation fraction: 0.1" in card
    assert "r: 8" in card and "learningRate" in card
    assert "loss [eval on recipes.csv (validation, 3 samples)]: 4.25" in card
    assert "validation loss (last validation): 3" in card and "best validation loss: 3" in card
    assert "AutoModelForSeq2SeqLM.from_pretrained" in card
    assert "overall = form (format x fluency" in card  # what the quality number means


def test_export_refuses_to_overwrite_a_directory(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")

    assert main(["export", str(gpt2_checkpoint()), "--out", str(tmp_path / "taken")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
