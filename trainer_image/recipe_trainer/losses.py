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
    log_softmax tensor. Forward and backward go a chunk of rows at a time (a custom autograd
    function), so beyond the logits only one chunk's fp32 temporaries and one number per token
    ever exist, whatever the logits' dtype; the gradient is the only other logits-sized tensor.

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
    flat_labels = labels.reshape(-1)
    real = flat_labels != ignore_index
    total = _SmoothedCrossEntropySum.apply(
        logits.reshape(-1, logits.shape[-1]), flat_labels, real, smoothing, chunk_tokens
    )
    return TokenLoss(sum=total, tokens=real.sum())


def plain_cross_entropy_sum(
    logits: torch.Tensor, labels: torch.Tensor, objective: TokenLoss, smoothing: float
) -> float:
    """The summed cross-entropy without label smoothing (what validation reports, so the training
    loss logged beside it is comparable) of `logits` whose smoothed loss `objective` the optimizer
    step already holds: that sum itself when there is no smoothing, else one no-grad pass more."""
    if smoothing == 0.0:
        return float(objective.sum.detach())
    with torch.no_grad():
        return float(label_smoothed_cross_entropy(logits.detach(), labels, 0.0).sum)


class _SmoothedCrossEntropySum(torch.autograd.Function):
    """Forward and backward a chunk of rows at a time, keeping for backward only the logits
    themselves and one float per row (the log-normaliser): autograd through logsumexp would
    keep an fp32 copy of bf16 logits alive until backward. The gradient per real row is
    softmax(z) - (1 - eps) * onehot(y) - eps / C."""

    @staticmethod
    def forward(ctx, logits, labels, real, smoothing, chunk_tokens):
        targets = torch.where(real, labels, 0).unsqueeze(-1)
        log_normaliser = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for rows in _chunks(logits.shape[0], chunk_tokens):
            chunk = logits[rows].float()
            log_normaliser[rows] = torch.logsumexp(chunk, dim=-1)
            per_token = log_normaliser[rows] - (1.0 - smoothing) * chunk.gather(-1, targets[rows]).squeeze(-1)
            if smoothing:
                per_token -= smoothing * chunk.mean(dim=-1)
            total += per_token[real[rows]].sum()
        ctx.save_for_backward(logits, targets, real, log_normaliser)
        ctx.smoothing, ctx.chunk_tokens = smoothing, chunk_tokens
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total):
        logits, targets, real, log_normaliser = ctx.saved_tensors
        smoothing, vocab = ctx.smoothing, logits.shape[-1]
        grad = torch.empty_like(logits)
        for rows in _chunks(logits.shape[0], ctx.chunk_tokens):
            chunk_grad = (logits[rows].float() - log_normaliser[rows].unsqueeze(-1)).exp_()
            if smoothing:
                chunk_grad -= smoothing / vocab
            chunk_grad.scatter_add_(
                -1, targets[rows], chunk_grad.new_full(targets[rows].shape, smoothing - 1.0)
            )
            chunk_grad *= (real[rows] * grad_total).unsqueeze(-1)
            grad[rows] = chunk_grad
        return grad, None, None, None, None


def _chunks(rows: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def next_token_labels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Shift causal-LM labels left by one so position i is scored on token i + 1.

    Shifting the labels (small) instead of slicing the logits (large) avoids copying the logits.
    """
    padding = labels.new_full((*labels.shape[:-1], 1), ignore_index)
    return torch.cat([labels[..., 1:], padding], dim=-1)
