import pytest
import torch
from recipe_api.v1alpha1 import GradientNoiseSpec
from recipe_trainer.training.gradient_noise import (
    GradientNoise,
    innermost_torch_optimizer,
    install_noise_hook,
)

SPEC = GradientNoiseSpec(enabled=True, eta=0.3, gamma=0.55)


def _param_with_grad(grad: torch.Tensor) -> torch.nn.Parameter:
    param = torch.nn.Parameter(torch.zeros_like(grad))
    param.grad = grad.clone()
    return param


@pytest.mark.parametrize("step", [0, 9, 999])
def test_noise_is_relative_to_the_gradient_rms_with_the_annealed_variance(step):
    noise = GradientNoise(SPEC, seed=1)
    noise.load_state_dict(noise.state_dict() | {"step": step})
    gradient = torch.full((400_000,), 0.002)  # rms 0.002, like a small LoRA gradient
    param = _param_with_grad(gradient)
    std = noise.add_to_gradients([param])
    relative = (0.3 / (1 + step) ** 0.55) ** 0.5
    assert noise.sigma() == pytest.approx(relative)
    assert std == pytest.approx(relative * 0.002)
    added = param.grad - gradient
    # standard error of a sample std with n = 4e5 is about 0.11 %; allow 1 %
    assert added.std().item() == pytest.approx(relative * 0.002, rel=0.01)


def test_noise_cannot_swamp_the_gradient_whatever_the_parameter_count():
    """The failure this design fixes: absolute noise of variance 0.3 on 0.92M LoRA weights had a
    norm of ~526 against a true gradient norm of ~0.45. Relative noise stays a fraction of it."""
    gradient = torch.randn(921_600, generator=torch.Generator().manual_seed(0)) * (0.45 / 960)
    param = _param_with_grad(gradient)
    GradientNoise(SPEC, seed=1).add_to_gradients([param])
    ratio = (param.grad - gradient).norm() / gradient.norm()
    assert ratio == pytest.approx(0.3**0.5, rel=0.01)
    cosine = torch.nn.functional.cosine_similarity(param.grad, gradient, dim=0)
    assert cosine > 0.85, "the noisy gradient keeps the true gradient's direction"


def test_rms_is_taken_over_all_ranks_with_reduce():
    """ZeRO shards: each rank holds part of the gradient; the scale must be the whole gradient's."""
    shard = torch.ones(1000)
    other_ranks = [3 * 3.0**2 * 1000, 3 * 1000]  # three more shards filled with 3.0

    def reduce(values):
        return [values[0] + other_ranks[0], values[1] + other_ranks[1]]

    std = GradientNoise(SPEC, seed=1).add_to_tensors([shard.clone()], reduce)
    whole_rms = ((1.0 * 1000 + 9.0 * 3000) / 4000) ** 0.5
    assert std == pytest.approx(0.3**0.5 * whole_rms)


def test_noise_shrinks_as_steps_advance_and_only_end_step_advances():
    noise = GradientNoise(SPEC, seed=1)
    sigmas = []
    for _ in range(5):
        noise.add_to_tensors([torch.ones(3)])
        noise.add_to_tensors([torch.ones(3)])  # a second parameter group in the same step
        sigmas.append(noise.sigma())
        noise.end_step()
    assert noise.step == 5
    assert sigmas == sorted(sigmas, reverse=True) and len(set(sigmas)) == 5


def test_a_zero_gradient_gets_no_noise():
    """A skipped (non-finite) step backpropagates zeros: the weights must not move."""
    grad = torch.zeros(10)
    assert GradientNoise(SPEC, seed=1).add_to_tensors([grad]) == 0.0
    assert torch.count_nonzero(grad) == 0


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
        uninterrupted.add_to_tensors([torch.ones(5)])
        uninterrupted.end_step()
    saved = uninterrupted.state_dict()
    expected = torch.ones(5)
    uninterrupted.add_to_tensors([expected])

    resumed = GradientNoise(SPEC, seed=0)
    resumed.load_state_dict(saved)
    actual = torch.ones(5)
    resumed.add_to_tensors([actual])
    assert torch.equal(actual, expected)


def test_noise_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected_global = torch.rand(3)
    torch.manual_seed(0)
    a, b, c = (torch.ones(6) for _ in range(3))
    GradientNoise(SPEC, seed=3).add_to_tensors([a])
    GradientNoise(SPEC, seed=3).add_to_tensors([b])
    GradientNoise(SPEC, seed=4).add_to_tensors([c])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.rand(3), expected_global)


def test_disabled_noise_changes_nothing_and_reports_zero_sigma():
    noise = GradientNoise(GradientNoiseSpec(enabled=False), seed=1)
    grad = torch.ones(10)
    assert noise.add_to_tensors([grad]) == 0.0
    assert noise.sigma() == 0.0
    assert torch.equal(grad, torch.ones(10))


def test_hook_noises_the_gradient_the_optimizer_applies_after_clipping():
    """The trainer's wiring: clip, then the optimizer's pre-step hook adds noise relative to the
    clipped gradient, then the update. With lr 1 and plain SGD the update is exactly -(g + n)."""
    weight = torch.nn.Parameter(torch.zeros(50_000))
    weight.grad = torch.full((50_000,), 10.0)  # norm ~2236, clipped to 1
    optimizer = torch.optim.SGD([weight], lr=1.0)
    handle = install_noise_hook(innermost_torch_optimizer(optimizer), GradientNoise(SPEC, seed=2))
    torch.nn.utils.clip_grad_norm_([weight], max_norm=1.0)
    clipped = weight.grad.clone()
    optimizer.step()
    handle.remove()
    noise = -weight.detach() - clipped
    assert noise.norm() / clipped.norm() == pytest.approx(0.3**0.5, rel=0.02)
    assert (-weight.detach()).norm() < 1.2, "the update stays on the clipped gradient's scale"


def test_innermost_optimizer_unwraps_deepspeed_style_wrappers():
    inner = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])

    class Wrapper:  # DeepSpeed's ZeRO optimizers keep the torch optimizer as `.optimizer`
        optimizer = inner

    assert innermost_torch_optimizer(Wrapper()) is inner
    assert innermost_torch_optimizer(inner) is inner
    with pytest.raises(TypeError):
        innermost_torch_optimizer(object())


@pytest.mark.usefixtures("single_process")
def test_noise_changes_the_gradient_a_real_deepspeed_step_applies(tmp_path):
    """The wiring, in a real ZeRO-2 DeepSpeed engine on CPU: the torch optimizer that DeepSpeed
    steps sees exactly the clean gradient of the same step plus the seeded noise, and the weights
    it updates differ from a noise-free run's. Two recipes, identical but for gradient noise; a
    probe hook registered after the trainer's records what each optimizer step is given."""
    from recipe_trainer.training.recipe import TrainingRecipe

    from .conftest import trainer_config

    runs = {}
    for noisy in (False, True):
        config = trainer_config(
            tmp_path / ("noisy" if noisy else "clean"),
            training={
                "maxSteps": 1,
                "scheduler": {"type": "constant", "warmupSteps": 0},  # a learning rate > 0 at step 1
                "gradientNoise": {"enabled": noisy, "eta": SPEC.eta, "gamma": SPEC.gamma},
            },
            validation={"everySteps": 1000, "maxBatches": 1, "samples": 0},
        )
        recipe = TrainingRecipe(config)
        recipe.setup()
        optimizer = innermost_torch_optimizer(recipe.engine.optimizer)
        given: list[list[torch.Tensor]] = []
        optimizer.register_step_pre_hook(
            lambda opt, _a, _k, given=given: given.append(
                [p.grad.detach().clone() for g in opt.param_groups for p in g["params"] if p.grad is not None]
            )
        )
        recipe.train()
        weights = [p.detach().clone() for p in recipe.trainable]
        runs[noisy] = (given, weights, config.spec.training.seed + recipe.rank)
        recipe.cleanup()

    (clean, clean_weights, _), (noised, noised_weights, seed) = runs[False], runs[True]
    assert len(clean) == len(noised) >= 1 and all(clean), "the optimizer was stepped with gradients"
    expected = GradientNoise(SPEC, seed=seed)  # the same draws, replayed on the clean gradients
    for clean_grads, noised_grads in zip(clean, noised, strict=True):
        replay = [g.clone() for g in clean_grads]
        expected.add_to_tensors(replay)
        for want, got, before in zip(replay, noised_grads, clean_grads, strict=True):
            assert torch.allclose(got, want, rtol=0, atol=1e-6 * before.abs().max().item()), (
                "not the seeded noise"
            )
        added = torch.cat([(n - c).flatten() for n, c in zip(noised_grads, clean_grads, strict=True)])
        clean_norm = torch.cat([c.flatten() for c in clean_grads]).norm()
        assert added.norm() / clean_norm == pytest.approx(SPEC.eta**0.5, rel=0.1)
    assert any(not torch.equal(a, b) for a, b in zip(clean_weights, noised_weights, strict=True))
