"""`training.precision`: auto picks bf16 autocast on a CPU with native bf16 matrix instructions
and fp32 on any other CPU; bf16 on CPU keeps weights, optimizer state, loss and saved adapters in
fp32, so a checkpoint resumes in either precision. The CPU is only ever asked through
`precision.cpu_flags` (its flags), which is what the tests replace; the bf16 run is real."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from recipe_api.contract import checkpoint_step_dir
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.run_log import read_run_log
from recipe_trainer.training import precision
from recipe_trainer.training.precision import cpu_flags, resolve_precision
from recipe_trainer.training.recipe import TrainingRecipe
from safetensors.torch import load_file

from .conftest import free_port, trainer_config

EPYC_FLAGS = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS_FLAGS = "fpu avx2 avx512f amx_tile amx_int8 amx_bf16"
AVX2_FLAGS = "fpu sse2 avx2 fma f16c"


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {EPYC_FLAGS}\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == frozenset(EPYC_FLAGS.split())
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: no flags, so fp32


@pytest.mark.parametrize(
    ("wanted", "on_gpu", "gpu_bf16", "flags", "name", "autocast", "deepspeed"),
    [
        ("auto", False, False, EPYC_FLAGS, "bf16", True, None),  # AVX-512 BF16: autocast, fp32 weights
        ("auto", False, False, SAPPHIRE_RAPIDS_FLAGS, "bf16", True, None),  # AMX
        ("auto", False, False, AVX2_FLAGS, "fp32", False, None),  # emulated bf16 would be slower
        ("bf16", False, False, AVX2_FLAGS, "bf16", True, None),  # asked for: done, with a warning
        ("fp32", False, False, EPYC_FLAGS, "fp32", False, None),  # asked for: kept
        ("auto", True, True, AVX2_FLAGS, "bf16", False, "bf16"),  # GPUs: DeepSpeed casts the model
        ("auto", True, False, EPYC_FLAGS, "fp32", False, None),  # older GPUs: not a silent fp16
        ("fp16", True, False, "", "fp16", False, "fp16"),
    ],
)
def test_resolution_per_hardware(wanted, on_gpu, gpu_bf16, flags, name, autocast, deepspeed):
    chosen = resolve_precision(wanted, on_gpu, gpu_bf16, flags.split())
    assert (chosen.name, chosen.cpu_autocast, chosen.deepspeed_dtype) == (name, autocast, deepspeed)
    assert chosen.describe().startswith(f"precision: {name}")


def test_the_log_line_says_why():
    assert "avx512_bf16" in resolve_precision("auto", False, False, EPYC_FLAGS.split()).describe()
    assert "no native bf16" in resolve_precision("auto", False, False, AVX2_FLAGS.split()).describe()
    assert "slower" in resolve_precision("bf16", False, False, AVX2_FLAGS.split()).describe()


def run(tmp_path: Path, monkeypatch, flags: str, steps: int, wanted: str = "auto") -> TrainingRecipe:
    """A tiny LoRA run to `steps` (resuming from the newest checkpoint) on a CPU with `flags`."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags.split()))
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    config = trainer_config(
        tmp_path,
        training={"maxSteps": steps, "precision": wanted},
        checkpoint={"everySteps": 2, "keepLast": 5},
    )
    recipe = TrainingRecipe(config)
    recipe.setup()
    recipe.summary = recipe.train()
    return recipe


def adapter(recipe: TrainingRecipe, step: int) -> dict[str, torch.Tensor]:
    directory = recipe.checkpoint_dir / checkpoint_step_dir(step) / layout.MODEL_DIR
    return load_file(directory / "adapter_model.safetensors")


@pytest.mark.usefixtures("single_process")
def test_bf16_trains_in_fp32_weights_and_resumes_across_precisions(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="recipe_trainer")
    fp32 = run(tmp_path, monkeypatch, AVX2_FLAGS, steps=2)
    assert fp32.precision.name == "fp32"
    fp32.cleanup()

    # the same run goes on in bf16 on a CPU that has it: every Linear really computes in bf16...
    linear_dtypes: set[torch.dtype] = set()
    real_linear = torch.nn.functional.linear

    def recording_linear(*args, **kwargs):
        out = real_linear(*args, **kwargs)
        if torch.is_grad_enabled():
            linear_dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", recording_linear)
    bf16 = run(tmp_path, monkeypatch, EPYC_FLAGS, steps=4)
    monkeypatch.setattr(torch.nn.functional, "linear", real_linear)
    assert bf16.precision.name == "bf16" and bf16.precision.cpu_autocast
    assert linear_dtypes == {torch.bfloat16}
    assert (
        "precision: bf16 (autocast, fp32 weights): auto: this CPU has native bf16 (avx512_bf16)"
        in caplog.text
    )
    assert "resumed from step 2" in caplog.text and "trained so far in fp32, now bf16" in caplog.text
    # ...while the master weights, the optimizer state, the loss and the saved adapter stay fp32
    assert {p.dtype for p in bf16.engine.module.parameters()} == {torch.float32}
    optimizer_state = bf16.engine.optimizer.optimizer.state
    assert {t.dtype for s in optimizer_state.values() for t in s.values() if t.dim() > 0} == {torch.float32}
    saved = adapter(bf16, 4)
    assert {t.dtype for t in saved.values()} == {torch.float32}
    assert any(not torch.equal(saved[n], adapter(bf16, 2)[n]) for n in saved)  # bf16 steps trained
    state = json.loads((bf16.checkpoint_dir / checkpoint_step_dir(4) / layout.STATE_FILE).read_text())
    assert state["precision"] == "bf16"
    bf16.cleanup()

    back = run(tmp_path, monkeypatch, EPYC_FLAGS, steps=6, wanted="fp32")  # and back to fp32
    assert back.summary.step == 6 and "trained so far in bf16, now fp32" in caplog.text
    losses = [e["loss"] for e in read_run_log(tmp_path) if e["event"] == "step"]
    assert len(losses) == 6 and all(isinstance(x, float) and x == x for x in losses)
    back.cleanup()
