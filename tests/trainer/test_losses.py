import pytest
import torch
import torch.nn.functional as F
from recipe_trainer.losses import (
    IGNORE_INDEX,
    label_smoothed_cross_entropy,
    next_token_labels,
    plain_cross_entropy_sum,
)

VOCAB = 37


def _batch(seed: int, batch: int = 3, length: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, VOCAB, generator=generator) * 3
    labels = torch.randint(0, VOCAB, (batch, length), generator=generator)
    labels[0, -4:] = IGNORE_INDEX  # padding at the end of a row
    labels[-1, 0] = IGNORE_INDEX  # a masked prompt position
    return logits, labels


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_torch_cross_entropy_and_its_gradient(smoothing):
    logits, labels = _batch(0)
    ours_input = logits.clone().requires_grad_()
    torch_input = logits.clone().requires_grad_()

    ours = label_smoothed_cross_entropy(ours_input, labels, smoothing=smoothing)
    reference = F.cross_entropy(
        torch_input.reshape(-1, VOCAB),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=smoothing,
    )
    ours.mean.backward()
    reference.backward()

    assert int(ours.tokens) == int((labels != IGNORE_INDEX).sum())
    torch.testing.assert_close(ours.mean, reference)
    torch.testing.assert_close(ours_input.grad, torch_input.grad)


def test_chunk_size_does_not_change_the_loss():
    logits, labels = _batch(1)
    whole = label_smoothed_cross_entropy(logits, labels, smoothing=0.1, chunk_tokens=10_000)
    chunked = label_smoothed_cross_entropy(logits, labels, smoothing=0.1, chunk_tokens=4)
    torch.testing.assert_close(chunked.sum, whole.sum)


def test_summed_micro_batches_weight_every_token_equally():
    """Accumulating (sum, tokens) over uneven micro-batches equals one big batch's mean."""
    logits_a, labels_a = _batch(2, batch=1, length=9)
    logits_b, labels_b = _batch(3, batch=4, length=9)
    part_a = label_smoothed_cross_entropy(logits_a, labels_a, smoothing=0.1)
    part_b = label_smoothed_cross_entropy(logits_b, labels_b, smoothing=0.1)
    together = label_smoothed_cross_entropy(
        torch.cat([logits_a, logits_b]), torch.cat([labels_a, labels_b]), smoothing=0.1
    )
    assert 0 < int(part_a.tokens) < int(part_b.tokens)
    accumulated = (part_a.sum + part_b.sum) / (part_a.tokens + part_b.tokens)
    torch.testing.assert_close(accumulated, together.mean)
    assert not torch.isclose((part_a.mean + part_b.mean) / 2, together.mean)


def test_batch_without_real_tokens_gives_zero_loss_and_zero_gradient():
    logits = torch.randn(2, 4, VOCAB, requires_grad=True)
    labels = torch.full((2, 4), IGNORE_INDEX)
    loss = label_smoothed_cross_entropy(logits, labels, smoothing=0.1)
    loss.mean.backward()
    assert int(loss.tokens) == 0
    assert float(loss.mean.detach()) == 0.0
    assert torch.count_nonzero(logits.grad) == 0


def test_low_precision_logits_are_summed_in_float32():
    logits, labels = _batch(4)
    low = label_smoothed_cross_entropy(logits.bfloat16(), labels, smoothing=0.1)
    full = label_smoothed_cross_entropy(logits.bfloat16().float(), labels, smoothing=0.1)
    assert low.sum.dtype == torch.float32
    torch.testing.assert_close(low.sum, full.sum)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_keeps_no_copy_of_the_logits(dtype):
    """What autograd holds until backward: the logits themselves plus a few numbers per token."""
    logits, labels = _batch(7, batch=4, length=64)
    logits = logits.to(dtype).requires_grad_()
    saved_bytes = []

    def pack(tensor):
        saved_bytes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = label_smoothed_cross_entropy(logits, labels, smoothing=0.1, chunk_tokens=32)
        loss.mean.backward()
    per_token_allowance = 32 * labels.numel()
    assert sum(saved_bytes) <= logits.numel() * logits.element_size() + per_token_allowance
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_logged_training_loss_is_plain_cross_entropy_whatever_the_smoothing(smoothing):
    logits, labels = _batch(4)
    objective = label_smoothed_cross_entropy(logits, labels, smoothing=smoothing)
    plain = F.cross_entropy(
        logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )

    logged = plain_cross_entropy_sum(logits, labels, objective, smoothing)

    assert logged == pytest.approx(float(plain), rel=1e-5)
    if smoothing:
        assert float(objective.sum) != pytest.approx(logged, rel=1e-3)  # the objective is not logged


def test_next_token_labels_score_each_position_on_the_following_token():
    logits, labels = _batch(5)
    ours = label_smoothed_cross_entropy(logits, next_token_labels(labels))
    reference = F.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(ours.mean, reference)


def test_mismatched_shapes_and_bad_smoothing_are_rejected():
    logits, labels = _batch(6)
    with pytest.raises(ValueError, match="do not match"):
        label_smoothed_cross_entropy(logits, labels[:, 1:])
    with pytest.raises(ValueError, match="smoothing"):
        label_smoothed_cross_entropy(logits, labels, smoothing=1.0)
