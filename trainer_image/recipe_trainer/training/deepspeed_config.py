"""The DeepSpeed JSON config of a run: a pure function of the spec and the hardware.

Choices the spec does not spell out, and why:

* precision: resolved beforehand (`precision.resolve_precision`); DeepSpeed casts the model only
  on GPU, CPU bf16 is autocast around fp32 weights, so this config's bf16 stays off there;
* optimizer: DeepSpeed's AdamW with the spec's weight decay; on CPU `torch_adam` so DeepSpeed
  does not JIT-compile its fused/CPU Adam (the image pre-builds those for GPUs);
* no DeepSpeed scheduler: `schedule.LearningRateSchedule` sets the rate before every step;
* gradient clipping stays DeepSpeed's (`gradient_clipping`): the gradient noise is added after it,
  by a pre-step hook on the torch optimizer DeepSpeed steps (`gradient_noise.install_noise_hook`),
  scaled to the RMS of the clipped gradient it is about to apply, with any ZeRO stage.

`spec.deepspeed.config` is merged over the result key by key (nested dicts merge, other values
replace), so a user can tune e.g. `zero_optimization.overlap_comm` without restating the rest.
"""

from __future__ import annotations

import copy
from typing import Any

from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_api.validation import gradient_accumulation_steps

from .precision import Precision

ADAM_BETAS = [0.9, 0.999]
ADAM_EPS = 1e-8


def build_deepspeed_config(
    spec: RecipeTrainingJobSpec, world_size: int, on_gpu: bool, precision: Precision
) -> dict[str, Any]:
    t = spec.training
    accumulation = gradient_accumulation_steps(spec, world_size)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": t.micro_batch_size * accumulation * world_size,
        "gradient_clipping": t.max_grad_norm,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": t.learning_rate,
                "betas": ADAM_BETAS,
                "eps": ADAM_EPS,
                "weight_decay": t.weight_decay,
                "torch_adam": not on_gpu,
            },
        },
        "zero_optimization": {"stage": spec.deepspeed.zero_stage},
        "bf16": {"enabled": precision.deepspeed_dtype == "bf16"},
        "fp16": {"enabled": precision.deepspeed_dtype == "fp16"},
        "steps_per_print": 2**31 - 1,  # the recipe reports progress itself
        "wall_clock_breakdown": False,
    }
    return deep_merge(config, spec.deepspeed.config)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `override` merged in: dicts recursively, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
