"""A tokenizer trained on recipes must behave like the architecture's own: right special ids,
lossless round trips on real recipes, and the same ids after save_pretrained / AutoTokenizer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from recipe_trainer.data.tokenizer import load_pretrained_tokenizer, special_token_ids, train_recipe_tokenizer
from transformers import AutoTokenizer

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


def sample_texts(limit: int = 999) -> list[str]:
    with SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    return [
        r["title"] + "\n" + "\n".join(json.loads(r["ingredients"]) + json.loads(r["directions"]))
        for r in rows
    ]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts()


def test_t5_tokenizer_has_t5_special_ids(texts):
    tokenizer = train_recipe_tokenizer(texts, vocab_size=800, kind="seq2seq")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert special_token_ids(tokenizer, "seq2seq")["decoder_start_token_id"] == 0
    assert len(tokenizer) == 800


def test_causal_tokenizer_pads_with_a_token_distinct_from_eos(texts):
    tokenizer = train_recipe_tokenizer(texts, vocab_size=800, kind="causal")
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_real_recipes_round_trip_and_survive_save_pretrained(texts, kind, tmp_path):
    tokenizer = train_recipe_tokenizer(texts[:900], vocab_size=1000, kind=kind)
    held_out = texts[950].replace("\n", " ")  # a recipe the tokenizer never saw
    ids = tokenizer(held_out, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == held_out
    assert len(ids) < len(held_out) / 2  # it learned recipe words, not characters
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(held_out, add_special_tokens=False)["input_ids"] == ids
    assert (reloaded.pad_token_id, reloaded.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)


def test_pretrained_tokenizer_without_pad_pads_with_eos(texts, tmp_path):
    tokenizer = train_recipe_tokenizer(texts[:200], vocab_size=600, kind="causal")
    tokenizer.pad_token = None  # as GPT-2 and Llama ship
    tokenizer.save_pretrained(tmp_path)
    loaded = load_pretrained_tokenizer(str(tmp_path))
    assert loaded.pad_token_id == loaded.eos_token_id


def test_unknown_kind_is_a_clear_error(texts):
    with pytest.raises(ValueError, match="seq2seq"):
        train_recipe_tokenizer(texts[:10], vocab_size=300, kind="encoder")
