"""The fast training forward (logits only at labels, attention inside each recipe of a flattened
batch) must give the plain path's losses and gradients: per step, within 1e-5, while training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from recipe_trainer.data.packing import TokenizedExample, collate_rows, pack_best_fit_decreasing
from recipe_trainer.losses import IGNORE_INDEX
from recipe_trainer.training.forward import (
    SEGMENT_ATTENTION,
    batch_loss,
    enable_segment_attention,
    reference_batch_loss,
    segment_attention_forward,
    uses_segment_attention,
)
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, T5Config

VOCAB, PAD, EOS = 96, 0, 1


def _examples(seed: int, count: int) -> list[TokenizedExample]:
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        source_length = int(torch.randint(2, 10, (1,), generator=generator))
        target_length = int(torch.randint(2, 24, (1,), generator=generator))
        source = torch.randint(2, VOCAB, (source_length,), generator=generator).tolist()
        target = torch.randint(2, VOCAB, (target_length - 1,), generator=generator).tolist() + [EOS]
        examples.append(TokenizedExample(source, target))
    return examples


def _packed_batch(seed: int, count: int = 12, width: int = 64) -> dict:
    examples = _examples(seed, count)
    rows = pack_best_fit_decreasing([e.sizes("causal") for e in examples], (width,))
    return collate_rows([[examples[i] for i in row] for row in rows], "causal", PAD)


def _tiny(architecture: str, lora: bool = False):
    torch.manual_seed(0)
    if architecture == "gpt2":
        config = GPT2Config(
            vocab_size=VOCAB, n_positions=128, n_embd=32, n_layer=2, n_head=2,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )  # fmt: skip
        model, targets = GPT2LMHeadModel(config), ["c_attn"]
    else:
        config = LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        )  # fmt: skip
        model, targets = LlamaForCausalLM(config), ["q_proj", "v_proj"]
    if lora:
        lora_config = LoraConfig(
            r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM"
        )
        model = get_peft_model(model, lora_config)
        for name, parameter in model.named_parameters():  # LoRA B starts at 0: make the adapters matter
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.02)
    return model


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_flattened_segment_loss_and_gradients_equal_the_plain_path(architecture):
    model = _tiny(architecture, lora=True)
    batch = _packed_batch(seed=1)
    assert batch["segment_lengths"].gt(0).sum() == 12 and batch["input_ids"].shape[0] < 12, (
        "rows hold several"
    )
    reference = reference_batch_loss(model, batch, "causal", smoothing=0.1)
    reference.loss.sum.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    assert enable_segment_attention(model) and uses_segment_attention(model)
    fast = batch_loss(model, batch, "causal", smoothing=0.1)
    fast.loss.sum.backward()

    assert int(fast.loss.tokens) == int(reference.loss.tokens) == batch["num_target_tokens"]
    assert fast.logits.shape == (batch["num_target_tokens"], VOCAB), "logits only where labels are"
    assert torch.allclose(fast.loss.mean, reference.loss.mean, atol=1e-6)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert torch.allclose(parameter.grad, expected[name], atol=1e-6), name


def test_padded_batches_compute_logits_only_at_labels():
    model = _tiny("llama")
    examples = _examples(seed=2, count=6)
    batch = collate_rows([[e] for e in examples], "causal", PAD, packed=False)
    reference = reference_batch_loss(model, batch, "causal", smoothing=0.0)
    fast = batch_loss(model, batch, "causal", smoothing=0.0)
    assert "segment_lengths" not in batch
    assert fast.logits.shape[0] == batch["num_target_tokens"] < batch["input_ids"].numel()
    assert torch.allclose(fast.loss.sum, reference.loss.sum, atol=1e-4)
    assert torch.equal(fast.labels, reference.labels[reference.labels != IGNORE_INDEX])


def _train(model, batches, fast: bool) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    losses = []
    for batch in batches:
        result = (batch_loss if fast else reference_batch_loss)(model, batch, "causal", smoothing=0.1)
        result.loss.mean.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(result.loss.mean.detach()))
    return losses


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_training_losses_match_the_plain_path_step_by_step(architecture):
    batches = [_packed_batch(seed) for seed in range(10, 16)]
    plain = _train(_tiny(architecture, lora=True), batches, fast=False)
    model = _tiny(architecture, lora=True)
    enable_segment_attention(model)
    fast = _train(model, batches, fast=True)
    assert plain[-1] < plain[0], "the steps train"
    assert max(abs(a - b) for a, b in zip(plain, fast, strict=True)) < 1e-5, (plain, fast)


def test_segment_kernel_equals_a_block_diagonal_causal_mask():
    """The kernel alone, with grouped-query heads: each segment attends only to its own past."""
    generator = torch.Generator().manual_seed(3)
    lengths = [5, 1, 9, 3]
    tokens = sum(lengths)
    query = torch.randn(1, 4, tokens, 8, generator=generator)
    key, value = (torch.randn(1, 2, tokens, 8, generator=generator) for _ in range(2))
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    boundaries = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
    output, _ = segment_attention_forward(
        module, query, key, value, None, scaling=0.5, cu_seq_lens_q=boundaries
    )

    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = (segment[:, None] == segment[None, :]) & torch.ones(tokens, tokens, dtype=torch.bool).tril()
    expected = F.scaled_dot_product_attention(
        query, key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1), attn_mask=mask, scale=0.5
    )
    assert torch.allclose(output, expected.transpose(1, 2), atol=1e-6)


def test_switched_model_generates_as_before():
    """Without segment lengths (generation with a cache, the plain path) the kernel is sdpa."""
    model = _tiny("llama").eval()
    prompt = torch.tensor([[5, 9, 13, 2, 7]])
    before = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    batch = _packed_batch(seed=4)
    with torch.no_grad():
        plain = reference_batch_loss(model, batch, "causal").loss.sum
    enable_segment_attention(model)
    assert model.config._attn_implementation == SEGMENT_ATTENTION
    after = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    assert torch.equal(before, after)
    with torch.no_grad():
        assert torch.allclose(reference_batch_loss(model, batch, "causal").loss.sum, plain, atol=1e-5)


def test_only_verified_architectures_with_plain_attention_switch():
    flash = _tiny("llama")
    flash.config._attn_implementation = "flash_attention_2"
    assert not enable_segment_attention(flash), "a kernel the user chose stays"
    t5 = torch.nn.Module()
    t5.config = T5Config(d_model=32, num_layers=1, num_heads=2)
    assert not enable_segment_attention(t5), "unverified architectures keep the plain path"
