"""The DeepSpeed config a job gets: batch arithmetic, precision per hardware, and user overrides
merged over the generated config without losing the rest."""

from __future__ import annotations

import pytest
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_trainer.training.deepspeed_config import build_deepspeed_config, deep_merge
from recipe_trainer.training.precision import resolve_precision

from .conftest import job_spec


def spec(**overrides) -> RecipeTrainingJobSpec:
    return RecipeTrainingJobSpec.model_validate(job_spec(**overrides))


FP32 = resolve_precision("fp32", False, False, ())


@pytest.mark.parametrize(
    ("precision", "on_gpu", "bf16_capable", "bf16", "fp16"),
    [
        ("auto", False, False, False, False),  # CPU trains in fp32 (or autocast bf16, fp32 weights)
        ("bf16", False, False, False, False),  # CPU bf16 is autocast: DeepSpeed keeps fp32 weights
        ("auto", True, True, True, False),  # Ampere and newer: bf16
        ("auto", True, False, False, False),  # older GPUs: fp32, not a silent fp16
        ("fp16", True, False, False, True),
        ("bf16", True, True, True, False),
        ("fp32", True, True, False, False),
    ],
)
def test_precision_follows_the_spec_and_the_hardware(precision, on_gpu, bf16_capable, bf16, fp16):
    chosen = resolve_precision(precision, on_gpu, bf16_capable, ["avx512_bf16"])
    config = build_deepspeed_config(spec(training={"precision": precision}), 1, on_gpu, chosen)
    assert config["bf16"]["enabled"] is bf16
    assert config["fp16"]["enabled"] is fp16


@pytest.mark.parametrize(
    ("training", "world_size", "accumulation", "global_batch"),
    [
        ({"microBatchSize": 4, "gradientAccumulationSteps": 3}, 1, 3, 12),
        ({"microBatchSize": 4, "gradientAccumulationSteps": 3}, 2, 3, 24),
        ({"microBatchSize": 4, "globalBatchSize": 64}, 2, 8, 64),  # accumulation derived
    ],
)
def test_batch_sizes_multiply_up_to_the_global_batch(training, world_size, accumulation, global_batch):
    config = build_deepspeed_config(spec(training=training), world_size, False, FP32)
    assert config["gradient_accumulation_steps"] == accumulation
    assert config["train_batch_size"] == global_batch
    assert config["train_micro_batch_size_per_gpu"] == training["microBatchSize"]


def test_optimizer_clipping_and_zero_stage_come_from_the_spec():
    config = build_deepspeed_config(
        spec(training={"weightDecay": 0.05, "maxGradNorm": 0.5}, deepspeed={"zeroStage": 1}), 1, False, FP32
    )
    assert config["optimizer"]["type"] == "AdamW"
    assert config["optimizer"]["params"]["weight_decay"] == 0.05
    assert config["optimizer"]["params"]["torch_adam"] is True  # no JIT-compiled Adam on CPU
    assert config["gradient_clipping"] == 0.5
    assert config["zero_optimization"] == {"stage": 1}
    assert "scheduler" not in config  # the recipe sets the learning rate itself
    gpu = build_deepspeed_config(spec(), 1, True, resolve_precision("auto", True, True, ()))
    assert gpu["optimizer"]["params"]["torch_adam"] is False  # the image's pre-built fused Adam


def test_user_config_is_merged_over_the_generated_one():
    user = {
        "zero_optimization": {"overlap_comm": True},
        "gradient_clipping": 2.0,
        "flops_profiler": {"enabled": True},
    }
    config = build_deepspeed_config(spec(deepspeed={"zeroStage": 2, "config": user}), 1, False, FP32)
    assert config["zero_optimization"] == {"stage": 2, "overlap_comm": True}  # nested: merged
    assert config["gradient_clipping"] == 2.0  # scalar: replaced
    assert config["flops_profiler"] == {"enabled": True}  # new: added
    assert config["optimizer"]["params"]["lr"] == spec().training.learning_rate  # untouched: kept


def test_deep_merge_does_not_modify_its_inputs():
    base, override = {"a": {"b": 1}}, {"a": {"c": 2}}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": 2}}
    assert base == {"a": {"b": 1}} and override == {"a": {"c": 2}}
