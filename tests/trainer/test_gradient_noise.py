import pytest
import torch
from recipe_api.v1alpha1 import GradientNoiseSpec
from recipe_trainer.gradient_noise import GradientNoise

SPEC = GradientNoiseSpec(enabled=True, eta=0.3, gamma=0.55)


def _zero_grad_param(size: int) -> torch.nn.Parameter:
    param = torch.nn.Parameter(torch.zeros(size))
    param.grad = torch.zeros(size)
    return param


@pytest.mark.parametrize("step", [0, 9, 999])
def test_noise_has_the_annealed_variance_eta_over_one_plus_t_to_the_gamma(step):
    noise = GradientNoise(SPEC, seed=1)
    noise.load_state_dict(noise.state_dict() | {"step": step})
    param = _zero_grad_param(400_000)
    sigma = noise.add_to_gradients([param])
    expected_variance = 0.3 / (1 + step) ** 0.55
    assert sigma**2 == pytest.approx(expected_variance)
    # standard error of a sample variance with n = 4e5 is about 0.22 %; allow 1 %
    assert param.grad.var().item() == pytest.approx(expected_variance, rel=0.01)
    assert abs(param.grad.mean().item()) < 0.01 * sigma


def test_noise_shrinks_as_steps_advance():
    noise = GradientNoise(SPEC, seed=1)
    sigmas = [noise.add_to_tensors([torch.zeros(3)]) for _ in range(5)]
    assert noise.step == 5
    assert sigmas == sorted(sigmas, reverse=True)
    assert len(set(sigmas)) == 5


def test_only_trainable_gradients_are_noised():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    model[0].requires_grad_(False)  # the frozen base of a LoRA model
    model(torch.ones(2, 4)).sum().backward()
    clean = model[1].weight.grad.clone()
    GradientNoise(SPEC, seed=1).add_to_gradients(model.parameters())
    assert model[0].weight.grad is None
    assert not torch.equal(model[1].weight.grad, clean)


def test_resumed_noise_continues_the_same_sequence():
    uninterrupted = GradientNoise(SPEC, seed=7)
    for _ in range(3):
        uninterrupted.add_to_gradients([_zero_grad_param(5)])
    saved = uninterrupted.state_dict()
    expected = _zero_grad_param(5)
    uninterrupted.add_to_gradients([expected])

    resumed = GradientNoise(SPEC, seed=0)
    resumed.load_state_dict(saved)
    actual = _zero_grad_param(5)
    resumed.add_to_gradients([actual])
    assert torch.equal(actual.grad, expected.grad)


def test_noise_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected_global = torch.rand(3)
    torch.manual_seed(0)
    a, b, c = (_zero_grad_param(6) for _ in range(3))
    GradientNoise(SPEC, seed=3).add_to_gradients([a])
    GradientNoise(SPEC, seed=3).add_to_gradients([b])
    GradientNoise(SPEC, seed=4).add_to_gradients([c])
    assert torch.equal(a.grad, b.grad)
    assert not torch.equal(a.grad, c.grad)
    assert torch.equal(torch.rand(3), expected_global)


def test_disabled_noise_changes_nothing_and_reports_zero_sigma():
    noise = GradientNoise(GradientNoiseSpec(enabled=False), seed=1)
    param = _zero_grad_param(10)
    assert noise.add_to_gradients([param]) == 0.0
    assert torch.count_nonzero(param.grad) == 0
