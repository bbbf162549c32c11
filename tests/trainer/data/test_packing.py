"""Packed rows must train exactly like separate rows: same logits, same labels, no padding leak."""

from __future__ import annotations

import pytest
import torch
from recipe_trainer.data.packing import (
    TokenizedExample,
    collate_rows,
    pack_best_fit_decreasing,
    row_capacity,
    supports_packing,
)
from recipe_trainer.losses import IGNORE_INDEX
from recipe_trainer.training.forward import forward_batch
from transformers import (
    BartConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 64
PAD, EOS = 0, 1


def _examples(seed: int, count: int) -> list[TokenizedExample]:
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        source_length, target_length = (int(x) for x in torch.randint(3, 12, (2,), generator=generator))
        source = torch.randint(2, VOCAB, (source_length,), generator=generator).tolist()
        target = torch.randint(2, VOCAB, (target_length - 1,), generator=generator).tolist() + [EOS]
        examples.append(TokenizedExample(source, target))
    return examples


def _tiny_causal(architecture: str):
    torch.manual_seed(0)
    if architecture == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=32, n_layer=2, n_head=2)
        return GPT2LMHeadModel(config).eval()
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _tiny_t5():
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=EOS,
    )  # fmt: skip
    return T5ForConditionalGeneration(config).eval()


def _separate_logits(model, task, examples):
    """Logits of each example run alone, unpadded: the reference packing must reproduce."""
    outputs = []
    for example in examples:
        batch = collate_rows([[example]], task, PAD, decoder_start_token_id=PAD, packed=False)
        with torch.no_grad():
            outputs.append(forward_batch(model, batch).logits[0])
    return outputs


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_packed_causal_logits_equal_separate_rows(architecture):
    model = _tiny_causal(architecture)
    examples = _examples(seed=1, count=7)
    rows = [[examples[0], examples[1], examples[2]], [examples[3], examples[4]], [examples[5], examples[6]]]
    batch = collate_rows(rows, "causal", PAD)
    with torch.no_grad():
        packed = forward_batch(model, batch).logits
    separate = iter(_separate_logits(model, "causal", examples))
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            length = len(example.source_ids) + len(example.target_ids)
            expected = next(separate)
            assert torch.allclose(packed[r, start : start + length], expected, atol=1e-5)
            start += length


def test_packed_t5_logits_equal_separate_rows():
    model = _tiny_t5()
    examples = _examples(seed=2, count=5)
    rows = [[examples[0], examples[1], examples[2]], [examples[3], examples[4]]]
    batch = collate_rows(rows, "seq2seq", PAD, decoder_start_token_id=PAD)
    with torch.no_grad():
        packed = forward_batch(model, batch).logits
    separate = iter(_separate_logits(model, "seq2seq", examples))
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            length = len(example.target_ids)
            assert torch.allclose(packed[r, start : start + length], next(separate), atol=1e-5)
            start += length


def test_only_verified_models_with_mask_kernels_pack():
    assert supports_packing(_tiny_causal("llama").config)
    assert supports_packing(_tiny_t5().config)
    flash = GPT2Config(n_embd=32, n_layer=1, n_head=2)
    flash._attn_implementation = "flash_attention_2"
    assert not supports_packing(flash), "flash attention takes no 4-D mask: pad instead"
    assert not supports_packing(BartConfig()), "unverified architectures fall back to padding"


def test_best_fit_decreasing_fills_rows_and_never_overflows():
    sizes = [
        (n,) for n in torch.randint(20, 400, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    ]
    rows = pack_best_fit_decreasing(sizes, (512,))
    assert sorted(p for row in rows for p in row) == list(range(300))
    assert all(sum(sizes[p][0] for p in row) <= 512 for row in rows)
    assert len(rows) <= -(-sum(s[0] for s in sizes) // 512) * 1.05  # within 5% of the ideal row count


def test_seq2seq_rows_respect_both_sides():
    sizes = [(200, 30), (200, 30), (100, 300), (100, 300)]
    rows = pack_best_fit_decreasing(sizes, row_capacity("seq2seq", 256, 512))
    for row in rows:
        assert sum(sizes[p][0] for p in row) <= 512 and sum(sizes[p][1] for p in row) <= 512
    with pytest.raises(ValueError, match="exceeds the row capacity"):
        pack_best_fit_decreasing([(600,)], (512,))


def test_labels_ignore_prompts_and_padding():
    examples = [TokenizedExample([5, 6, 7], [8, 9, EOS]), TokenizedExample([5, 6], [10, EOS])]
    batch = collate_rows([[examples[0], examples[1]], [examples[1]]], "causal", PAD)
    assert batch["labels"][0].tolist() == [IGNORE_INDEX] * 3 + [8, 9, EOS] + [IGNORE_INDEX] * 2 + [10, EOS]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX] * 2 + [10, EOS] + [IGNORE_INDEX] * 6
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    assert (
        batch["num_real_tokens"] == 14
        and batch["num_padded_tokens"] == 20
        and batch["num_target_tokens"] == 7
    )
    assert batch["attention_mask"].dtype == torch.bool
