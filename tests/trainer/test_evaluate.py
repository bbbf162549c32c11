"""`recipe-train eval`: the numbers a user reads must repeat with a seed and count only real tokens."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from checkpoint_fixtures import SAMPLE_CSV, gpt2_checkpoint, one_torch_thread, recipe_pairs, t5_checkpoints
from recipe_trainer.cli import main
from recipe_trainer.evaluation.checkpoint_eval import load_examples, loss_and_perplexity, spec_for_data
from recipe_trainer.inference import load_checkpoint, tokenize_pair

FAST = ["--samples", "4", "--max-new-tokens", "24"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _eval(checkpoint, *extra: str) -> int:
    return main(["eval", str(checkpoint), "--data", str(SAMPLE_CSV), *FAST, *extra])


def test_eval_repeats_exactly_with_the_same_seed_and_writes_json_next_to_the_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "step-00000140"
    shutil.copytree(t5_checkpoints().trained, checkpoint)

    assert _eval(checkpoint, "--seed", "3") == 0
    first = json.loads((checkpoint / "eval.json").read_text())
    table = capsys.readouterr().out
    assert _eval(checkpoint, "--seed", "3", "--output", str(tmp_path / "again.json")) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert _eval(checkpoint, "--seed", "4", "--output", str(tmp_path / "other.json")) == 0
    other = json.loads((tmp_path / "other.json").read_text())

    assert first == again
    for name in ("loss", "perplexity", "quality", "rouge_l", "bleu"):
        assert name in table and math.isfinite(first["metrics"][name])
    assert first["split"] == "validation" and first["examples"] == len(recipe_pairs("seq2seq", "validation"))
    assert math.isclose(first["metrics"]["perplexity"], math.exp(first["loss"]))
    assert len(first["samples"]) == 4 and all(s["generated"] for s in first["samples"])
    assert set(first["diversity"]) == {"unique_steps", "self_bleu"}  # the set vs its references
    assert "diversity unique_steps: generated" in table
    assert [s["index"] for s in other["samples"]] != [s["index"] for s in first["samples"]]
    assert other["loss"] == first["loss"]  # the seed picks samples, never changes the loss


@pytest.mark.parametrize("which", ["seq2seq", "causal"])
def test_loss_counts_only_target_tokens_whatever_the_padding(which):
    """Batching pads short recipes, and causal inputs carry the prompt: neither may count. The
    reference is Hugging Face's own loss of each recipe alone, weighted by its target tokens."""
    loaded = load_checkpoint(t5_checkpoints().trained if which == "seq2seq" else gpt2_checkpoint())
    examples = list(recipe_pairs(loaded.task, "validation"))[:6]
    batched, _, tokens = loss_and_perplexity(loaded, examples, 32, 64, batch_size=6)

    total, count = 0.0, 0
    for prompt, recipe in examples:
        example = tokenize_pair(loaded.tokenizer, prompt, recipe, loaded.task, 32, 64)
        source, target = torch.tensor([example.source_ids]), torch.tensor([example.target_ids])
        with torch.no_grad():
            if loaded.task == "seq2seq":
                loss = loaded.model(input_ids=source, labels=target).loss
                n = target.numel()
            else:
                labels = torch.cat([torch.full_like(source, -100), target], dim=1)
                loss = loaded.model(input_ids=torch.cat([source, target], dim=1), labels=labels).loss
                n = target.numel() - (source.numel() == 0)
        total += float(loss) * n
        count += n
    assert tokens == count
    assert batched == pytest.approx(total / count, rel=1e-5)


def test_whole_file_uses_every_recipe_and_the_split_is_the_training_runs():
    spec = spec_for_data(load_checkpoint(gpt2_checkpoint()).config.spec, str(SAMPLE_CSV))
    validation = load_examples(spec, "causal", "validation")
    everything = load_examples(spec, "causal", "all")

    assert validation == list(recipe_pairs("causal", "validation"))
    assert len(everything) == len(validation) + len(recipe_pairs("causal", "train"))


def test_eval_with_missing_data_says_so_in_one_line(tmp_path, capsys):
    assert main(["eval", str(gpt2_checkpoint()), "--data", str(tmp_path / "nope.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert "nope.csv" in err and len(err.splitlines()) == 1
