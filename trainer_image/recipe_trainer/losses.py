"""Label-smoothed cross-entropy over real target tokens, as a (sum, token count) pair.

Why not `torch.nn.functional.cross_entropy(..., label_smoothing=...)` with its mean?
  * With packing and gradient accumulation, micro-batches (and ranks) hold different numbers of
    real tokens. Averaging per micro-batch would weight a token in a short micro-batch more than
    one in a long micro-batch; returning the sum and the count lets the loop weight by tokens
    (divide the sum by the global token count of the optimizer step).
  * The vocabulary axis is the big one (32k+ columns per token). This loss uses the identity

        -log p_y = logsumexp(z) - z_y
        -(1/C) sum_c log p_c = logsumexp(z) - mean_c(z)

    so it needs only a logsumexp, a gather and a mean over each row of logits: no one-hot, no
    log_softmax tensor, nothing of the logits' size is built besides what logsumexp uses
    transiently. Rows are processed in chunks so low-precision logits are upcast to fp32 a chunk
    at a time.

The value matches torch's label smoothing: (1 - eps) * nll + eps * (uniform cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100
DEFAULT_CHUNK_TOKENS = 4096


@dataclass(frozen=True)
class TokenLoss:
    """Summed loss over real target tokens and how many there were."""

    sum: torch.Tensor  # scalar, carries the autograd graph
    tokens: torch.Tensor  # scalar int64, no gradient

    @property
    def mean(self) -> torch.Tensor:
        """Mean per real token; 0 (still differentiable) when the batch has no real token."""
        return self.sum / self.tokens.clamp(min=1).to(self.sum.dtype)


def label_smoothed_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    smoothing: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> TokenLoss:
    """Cross-entropy of `logits` [..., vocab] against `labels` [...], skipping `ignore_index`.

    `logits` and `labels` must already be aligned (use `next_token_labels` for causal LMs).
    The sum is computed in fp32 whatever the logits' dtype.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    real = flat_labels != ignore_index
    total = flat_logits.new_zeros((), dtype=torch.float32)
    for start in range(0, flat_labels.numel(), chunk_tokens):
        rows = slice(start, start + chunk_tokens)
        chunk = flat_logits[rows].float()
        chunk_real = real[rows]
        targets = torch.where(chunk_real, flat_labels[rows], 0)
        log_normaliser = torch.logsumexp(chunk, dim=-1)
        target_logit = chunk.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        per_token = log_normaliser - (1.0 - smoothing) * target_logit
        if smoothing:
            per_token = per_token - smoothing * chunk.mean(dim=-1)
        total = total + torch.where(chunk_real, per_token, 0.0).sum()
    return TokenLoss(sum=total, tokens=real.sum())


def next_token_labels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Shift causal-LM labels left by one so position i is scored on token i + 1.

    Shifting the labels (small) instead of slicing the logits (large) avoids copying the logits.
    """
    padding = labels.new_full((*labels.shape[:-1], 1), ignore_index)
    return torch.cat([labels[..., 1:], padding], dim=-1)
