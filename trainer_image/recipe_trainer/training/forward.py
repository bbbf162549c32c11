"""The loss of one micro-batch, computing only what the loss needs.

Why: on a real model the CPU (and a GPU at small batch) is compute-bound, so speed comes from
doing less arithmetic. For SmolLM2-135M two kinds of work were thrown away by the plain path
(full logits from `forward_batch`, then the loss):

* the vocabulary projection (49k x 576, about a fifth of the forward FLOPs) on prompt positions,
  whose logits the loss ignores. Causal LMs here get `logits_to_keep` = the positions that carry
  a (shifted) label, so `lm_head` and the loss's softmax run on those rows only;
* attention over the masked-out pairs of packed rows: a dense 4-D mask makes a 512-token row of
  five recipes cost attention for all 512 x 512 pairs. Packed causal batches are instead flattened
  into one sequence without padding, `position_ids` restarting at each recipe, and run with the
  `SEGMENT_ATTENTION` kernel, which attends inside each recipe only: per-recipe causal SDPA on
  CPU (the flash kernel, no mask), one variable-length flash call
  (`torch.nn.attention.varlen.varlen_attn`) on CUDA in half precision.

The result is the same loss (tests/trainer/test_forward.py: within 1e-5 per step of the plain
path on a tiny Llama and GPT-2) with less work; `reference_batch_loss` is that plain path,
kept for seq2seq models and as the yardstick.

The kernel is registered with transformers' `AttentionInterface`; a model switched to it
(`enable_segment_attention`) behaves exactly like `sdpa` whenever a batch carries no segment
boundaries (validation of other callers, generation with a cache), so switching is safe for
the whole run. Pure: no loop, no state besides the registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from ..data.packing import BATCH_STATISTICS, SEGMENT_ATTENTION
from ..losses import IGNORE_INDEX, TokenLoss, label_smoothed_cross_entropy, next_token_labels

# Architectures whose flattened, segment-attention loss was checked equal to the plain path's.
SEGMENT_ATTENTION_MODEL_TYPES = frozenset({"llama", "gpt2"})
# Kernels the segment kernel replaces (it falls back to sdpa, which needs no other mask format).
_REPLACEABLE_IMPLEMENTATIONS = frozenset({None, "sdpa", "eager", SEGMENT_ATTENTION})


@dataclass
class BatchLoss:
    """The micro-batch's loss, with the logits and labels it was computed from (aligned, label
    positions only where the fast path ran): enough for another metric of the same logits."""

    loss: TokenLoss
    logits: torch.Tensor
    labels: torch.Tensor


def batch_loss(model: Any, batch: dict[str, Any], task: str, smoothing: float = 0.0) -> BatchLoss:
    """Label-smoothed cross-entropy of `batch` (from `packing.collate_rows`) under `model` (a
    transformers/PEFT model or a DeepSpeed engine around one), as cheaply as the model allows."""
    if task != "causal":
        return reference_batch_loss(model, batch, task, smoothing)
    labels = next_token_labels(batch["labels"])
    if "segment_lengths" in batch and uses_segment_attention(model):
        return _flattened_loss(model, batch, labels, smoothing)
    keep = labels != IGNORE_INDEX
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
    logits = model(**inputs, logits_to_keep=keep).logits
    return _loss(logits, labels[keep], smoothing)


def reference_batch_loss(model: Any, batch: dict[str, Any], task: str, smoothing: float = 0.0) -> BatchLoss:
    """The plain path: full logits of every position (`forward_batch`), then the loss."""
    logits = forward_batch(model, batch).logits
    labels = next_token_labels(batch["labels"]) if task == "causal" else batch["labels"]
    return _loss(logits, labels, smoothing)


def forward_batch(model: Any, batch: dict[str, Any]) -> Any:
    """Run `model` (a transformers or PEFT model, or a DeepSpeed engine around one) on a batch from
    `packing.collate_rows` and return its output (`.logits`). Packed seq2seq batches run the encoder
    with the source mask and then the whole model with the cross-attention mask, because T5's
    forward would otherwise use the encoder mask for cross-attention too. No loss is computed here
    (labels are not passed): the callers compute their own from the logits and `batch["labels"]`."""
    inputs = {k: v for k, v in batch.items() if k not in BATCH_STATISTICS and k != "labels"}
    cross_mask = inputs.pop("cross_attention_mask", None)
    if cross_mask is None:
        return model(**inputs)
    unwrapped = getattr(model, "module", model)  # DeepSpeed engine -> the model it wraps
    encoder_outputs = unwrapped.get_encoder()(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
    )
    return model(
        encoder_outputs=encoder_outputs,
        attention_mask=cross_mask,
        decoder_input_ids=inputs["decoder_input_ids"],
        decoder_attention_mask=inputs["decoder_attention_mask"],
    )


def _loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> BatchLoss:
    return BatchLoss(label_smoothed_cross_entropy(logits, labels, smoothing), logits, labels)


def _flattened_loss(model: Any, batch: dict[str, Any], labels: torch.Tensor, smoothing: float) -> BatchLoss:
    """All rows' real tokens as one sequence (padding dropped), recipes delimited by cumulative
    lengths that the segment kernel reads; logits only where a label is."""
    segments = batch["segment_lengths"]  # [rows, max recipes per row], 0-padded
    width = batch["input_ids"].shape[1]
    real = torch.arange(width, device=segments.device)[None, :] < segments.sum(dim=1, keepdim=True)
    lengths = segments[segments > 0]
    boundaries = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    longest = int(lengths.max())
    input_ids = batch["input_ids"][real][None]
    flat_labels = labels[real]
    keep = flat_labels != IGNORE_INDEX
    logits = model(
        input_ids=input_ids,
        position_ids=batch["position_ids"][real][None],
        attention_mask=torch.ones_like(input_ids),  # all real: no padding mask, no packed-mask guessing
        cu_seq_lens_q=boundaries,
        cu_seq_lens_k=boundaries,
        max_length_q=longest,
        max_length_k=longest,
        logits_to_keep=keep[None],
    ).logits
    return _loss(logits, flat_labels[keep], smoothing)


# ---------------------------------------------------------------- the segment attention kernel


def segment_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention inside each segment of a flattened batch ([1, heads, tokens, dim]),
    segments given by `cu_seq_lens_q`; without it, transformers' sdpa kernel unchanged."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if query.shape[0] != 1:
        raise ValueError("segment attention takes one flattened sequence (batch size 1)")
    groups = query.shape[1] // key.shape[1]
    if query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and dropout == 0.0:
        from torch.nn.attention.varlen import varlen_attn  # here: only CUDA half precision needs it

        longest = int(kwargs.get("max_length_q") or int((cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).max()))
        output = varlen_attn(
            query[0].transpose(0, 1), key[0].transpose(0, 1), value[0].transpose(0, 1),
            cu_seq_lens_q, cu_seq_lens_q, longest, longest,
            scale=scaling, window_size=(-1, 0), enable_gqa=groups > 1,
        )  # fmt: skip
        return output[None], None  # [1, tokens, heads, dim]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    sizes = (cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).tolist()
    parts = [
        F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling)
        for q, k, v in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2), strict=True)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def register_segment_attention() -> None:
    """Make `SEGMENT_ATTENTION` a transformers attention implementation (idempotent). Its masks
    are sdpa's, for the batches that carry no segments."""
    AttentionInterface.register(SEGMENT_ATTENTION, segment_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SEGMENT_ATTENTION, sdpa_mask)


def _unwrapped(model: Any) -> Any:
    model = getattr(model, "module", model)  # DeepSpeed engine
    return model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT


def enable_segment_attention(model: Any) -> bool:
    """Switch `model` to the segment kernel when its architecture is verified and its attention
    is a plain one (not a flash kernel the user chose); True when switched."""
    config = _unwrapped(model).config
    if getattr(config, "model_type", None) not in SEGMENT_ATTENTION_MODEL_TYPES:
        return False
    if getattr(config, "_attn_implementation", None) not in _REPLACEABLE_IMPLEMENTATIONS:
        return False
    register_segment_attention()
    config._attn_implementation = SEGMENT_ATTENTION
    return True


def uses_segment_attention(model: Any) -> bool:
    return getattr(_unwrapped(model).config, "_attn_implementation", None) == SEGMENT_ATTENTION
