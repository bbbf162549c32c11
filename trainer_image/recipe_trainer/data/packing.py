"""Packing several tokenized recipes into one row, and collating rows into model-ready batches.

Why: recipes vary from 40 to 500+ tokens; padding every row to the longest wastes most of the
compute. Packing fills each row with several recipes, and masks keep attention inside each recipe,
so the logits of a packed row equal those of the recipes run one by one (tested to 1e-5).

How the attention stays inside each example (transformers 5.23, measured; see TOOLCHAIN.md):

* causal LMs (GPT-2, Llama): `position_ids` restart at 0 at each recipe, and `attention_mask` is a
  4-D boolean tensor [batch, 1, query, key], block-diagonal by recipe and causal;
* seq2seq (T5): encoder self-attention block-diagonal by source; decoder self-attention
  block-diagonal by target and causal; cross-attention from each target only to its own source;
  decoder inputs restart with the decoder start token at each target. T5's relative position bias
  only sees distances inside a segment, which packing leaves unchanged. T5's forward uses one mask
  for encoder self-attention and cross-attention, so packed seq2seq batches go through
  `recipe_trainer.training.forward.forward_batch`, which runs the encoder and the decoder with their own masks.

Masks are boolean (True = may attend): O(length^2) bits per row, 256 KiB per row at length 512.
Padding positions (after the last recipe) may attend everything, so no softmax row is empty (an
empty row gives NaN in scaled-dot-product attention); no real position ever attends padding, and
padding never carries a label.

Labels follow the Hugging Face convention: aligned with the inputs (causal models shift them
inside), -100 (`losses.IGNORE_INDEX`) wherever there is no loss: padding, and for causal LMs the
prompt too. Running a model on a batch is `recipe_trainer.training.forward`'s; this module only builds it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..losses import IGNORE_INDEX

Task = Literal["seq2seq", "causal"]
# Batch entries that describe the batch rather than feed the model (`segment_lengths`: see
# `collate_rows`; the training forward reads it, the model never does).
BATCH_STATISTICS = (
    "num_real_tokens", "num_target_tokens", "num_examples", "num_padded_tokens", "segment_lengths",
)  # fmt: skip


@dataclass(frozen=True)
class TokenizedExample:
    """One recipe as token ids. `source_ids` is the encoder input (seq2seq) or the prompt, which
    is not trained on (causal); `target_ids` is the recipe, ending with the end-of-sequence id."""

    source_ids: Sequence[int]
    target_ids: Sequence[int]

    def sizes(self, task: Task) -> tuple[int, ...]:
        """What the example occupies in a row: (target, source) lengths for seq2seq, the one
        sequence length for causal."""
        if task == "seq2seq":
            return (len(self.target_ids), len(self.source_ids))
        return (len(self.source_ids) + len(self.target_ids),)


def row_capacity(task: Task, max_source_length: int, max_target_length: int) -> tuple[int, ...]:
    """The room in one row, in the order of `TokenizedExample.sizes`. Examples are truncated to the
    max lengths, so a single example always fits. A seq2seq row's encoder side may be as long as its
    decoder side: prompts are much shorter than recipes, and a row sized by `max_source_length`
    would hold only as many recipes as prompts fit there, leaving the decoder half empty."""
    if task == "seq2seq":
        return (max_target_length, max(max_source_length, max_target_length))
    return (max_source_length + max_target_length,)


def pack_best_fit_decreasing(sizes: Sequence[tuple[int, ...]], capacity: tuple[int, ...]) -> list[list[int]]:
    """Group example positions into rows whose summed sizes stay within `capacity` in every
    dimension; returns rows of positions. Best-fit decreasing on the first dimension (the longest
    side: the target for seq2seq), the others checked as constraints: deterministic, O(n log n)
    in practice, and within a few percent of optimal on recipe length distributions."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][0], i))
    rows: list[list[int]] = []
    room: list[list[int]] = []  # remaining capacity per row, every dimension
    free: list[tuple[int, int]] = []  # (remaining first dimension, row), sorted
    for position in order:
        need = sizes[position]
        if any(n > c for n, c in zip(need, capacity, strict=True)):
            raise ValueError(f"example {position} of size {need} exceeds the row capacity {capacity}")
        slot = bisect.bisect_left(free, (need[0], -1))
        while slot < len(free) and any(n > r for n, r in zip(need[1:], room[free[slot][1]][1:], strict=True)):
            slot += 1
        if slot < len(free):
            _, row = free.pop(slot)
        else:
            row = len(rows)
            rows.append([])
            room.append(list(capacity))
        rows[row].append(position)
        room[row] = [r - n for r, n in zip(room[row], need, strict=True)]
        bisect.insort(free, (room[row][0], row))
    return rows


# Masks and padding are built with numpy and handed to torch without a copy: these small
# element-wise ops run single-threaded, never contending with the training step for torch's threads
# (on a busy 2-core machine torch's own version was 40x slower).


def _segment_ids(lengths_per_row: list[list[int]], width: int) -> np.ndarray:
    """[rows, width] segment number of each position (0, 1, ...), -1 on padding."""
    segments = np.full((len(lengths_per_row), width), -1, dtype=np.int32)
    for r, lengths in enumerate(lengths_per_row):
        segments[r, : sum(lengths)] = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    return segments


def _block_mask(query_segments: np.ndarray, key_segments: np.ndarray, causal: bool) -> torch.Tensor:
    """[rows, 1, q, k] boolean: a real query attends keys of its own segment (earlier ones only if
    causal); a padding query attends everything, so its softmax row is never empty."""
    same = query_segments[:, :, None] == key_segments[:, None, :]
    same &= (query_segments >= 0)[:, :, None]
    if causal:
        same &= np.tri(query_segments.shape[1], key_segments.shape[1], dtype=bool)
    same |= (query_segments < 0)[:, :, None]
    return torch.from_numpy(same[:, None, :, :])


def _padded(sequences: list[list[int]], width: int, value: int) -> torch.Tensor:
    out = np.full((len(sequences), width), value, dtype=np.int64)
    for r, sequence in enumerate(sequences):
        out[r, : len(sequence)] = sequence
    return torch.from_numpy(out)


def _padding_mask(segments: np.ndarray) -> torch.Tensor:
    """The ordinary [rows, length] mask of unpacked batches: 1 on tokens, 0 on padding."""
    return torch.from_numpy((segments >= 0).astype(np.int64))


def collate_rows(
    rows: Sequence[Sequence[TokenizedExample]],
    task: Task,
    pad_token_id: int,
    decoder_start_token_id: int | None = None,
    packed: bool = True,
) -> dict[str, Any]:
    """Turn rows of examples into one batch: model inputs (see the module docstring) plus
    `num_real_tokens` (non-padding tokens fed to the model: the throughput figure),
    `num_target_tokens` (positions with a label: the loss's denominator), `num_examples` and
    `num_padded_tokens` (all positions processed, for packing efficiency). Rows are padded to the
    longest row of the batch. `packed=False` (one example per row) gives the ordinary 2-D padding
    masks that every model and attention kernel accepts. Packed causal batches also carry
    `segment_lengths` [rows, most recipes in a row] (0-padded): the recipes' lengths in each row,
    from which `forward.batch_loss` flattens the batch and attends inside each recipe only."""
    if not packed and any(len(row) != 1 for row in rows):
        raise ValueError("unpacked batches carry exactly one example per row")
    if task == "seq2seq":
        batch = _collate_seq2seq(rows, pad_token_id, decoder_start_token_id, packed)
    else:
        batch = _collate_causal(rows, pad_token_id, packed)
    batch["num_target_tokens"] = int((batch["labels"] != IGNORE_INDEX).sum())
    batch["num_examples"] = sum(len(row) for row in rows)
    return batch


def _collate_causal(rows, pad_token_id: int, packed: bool) -> dict[str, Any]:
    tokens, labels, positions, lengths = [], [], [], []
    for row in rows:
        row_tokens, row_labels, row_positions, row_lengths = [], [], [], []
        for example in row:
            sequence = [*example.source_ids, *example.target_ids]
            row_tokens += sequence
            row_labels += [IGNORE_INDEX] * len(example.source_ids) + list(example.target_ids)
            row_positions += range(len(sequence))
            row_lengths.append(len(sequence))
        tokens.append(row_tokens)
        labels.append(row_labels)
        positions.append(row_positions)
        lengths.append(row_lengths)
    width = max(len(t) for t in tokens)
    segments = _segment_ids(lengths, width)
    batch: dict[str, Any] = {
        "input_ids": _padded(tokens, width, pad_token_id),
        "labels": _padded(labels, width, IGNORE_INDEX),
        "position_ids": _padded(positions, width, 0),
    }
    batch["attention_mask"] = (
        _block_mask(segments, segments, causal=True) if packed else _padding_mask(segments)
    )
    if packed:
        batch["segment_lengths"] = _padded(lengths, max(len(row) for row in lengths), 0)
    batch["num_real_tokens"] = int((segments >= 0).sum())
    batch["num_padded_tokens"] = len(rows) * width
    return batch


def _collate_seq2seq(
    rows, pad_token_id: int, decoder_start_token_id: int | None, packed: bool
) -> dict[str, Any]:
    if decoder_start_token_id is None:
        raise ValueError("seq2seq batches need the decoder start token id (T5: the pad id)")
    sources, targets, decoder_inputs, source_lengths, target_lengths = [], [], [], [], []
    for row in rows:
        sources.append([t for example in row for t in example.source_ids])
        targets.append([t for example in row for t in example.target_ids])
        decoder_inputs.append(
            [t for example in row for t in (decoder_start_token_id, *example.target_ids[:-1])]
        )
        source_lengths.append([len(example.source_ids) for example in row])
        target_lengths.append([len(example.target_ids) for example in row])
    source_width = max(len(s) for s in sources)
    target_width = max(len(t) for t in targets)
    source_segments = _segment_ids(source_lengths, source_width)
    target_segments = _segment_ids(target_lengths, target_width)
    batch: dict[str, Any] = {
        "input_ids": _padded(sources, source_width, pad_token_id),
        "decoder_input_ids": _padded(decoder_inputs, target_width, pad_token_id),
        "labels": _padded(targets, target_width, IGNORE_INDEX),
    }
    if packed:
        batch["attention_mask"] = _block_mask(source_segments, source_segments, causal=False)
        batch["decoder_attention_mask"] = _block_mask(target_segments, target_segments, causal=True)
        batch["cross_attention_mask"] = _block_mask(target_segments, source_segments, causal=False)
    else:
        batch["attention_mask"] = _padding_mask(source_segments)
        batch["decoder_attention_mask"] = _padding_mask(target_segments)
    batch["num_real_tokens"] = int((source_segments >= 0).sum() + (target_segments >= 0).sum())
    batch["num_padded_tokens"] = len(rows) * (source_width + target_width)
    return batch


# Architectures whose packed logits were checked equal to separate rows (tests/trainer/data).
PACKING_VERIFIED_MODEL_TYPES = frozenset({"t5", "mt5", "gpt2", "llama"})
# The attention kernel of `recipe_trainer.training.forward` (sdpa unless a batch carries segment lengths).
SEGMENT_ATTENTION = "recipe_segments"
# Attention kernels that take a 4-D boolean mask (flash-attention kernels do not).
MASK_ATTENTION_IMPLEMENTATIONS = frozenset({None, "eager", "sdpa", SEGMENT_ATTENTION})


def supports_packing(config: Any) -> bool:
    """Whether a model (by its transformers config) may be trained on packed rows: an architecture
    verified to give the same logits packed and unpacked, with an attention kernel that accepts
    4-D masks. Others train on length-grouped padded batches instead, which is always correct."""
    return (
        getattr(config, "model_type", None) in PACKING_VERIFIED_MODEL_TYPES
        and getattr(config, "_attn_implementation", None) in MASK_ATTENTION_IMPLEMENTATIONS
    )
