"""Fixtures of the training-engine tests: tiny scratch models on the bundled sample, single-process
DeepSpeed on CPU in this process, and the environment of real multi-process runs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
from recipe_api.launch import free_port
from recipe_api.trainer_config import TrainerConfig
from recipe_trainer import run_layout
from recipe_trainer.user_cache import extensions_dir

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO / "examples" / "data" / "recipenlg_sample_999.csv"
EXTENSIONS_CACHE = extensions_dir()  # local mode's: one per user, built once for tests and runs

TINY_T5 = {
    "model_type": "t5",
    "vocab_size": 600,
    "d_model": 64,
    "d_ff": 128,
    "d_kv": 16,
    "num_heads": 4,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "dropout_rate": 0.1,
}


def cpu_deepspeed_env(threads: int = 1) -> dict[str, str]:
    """What a DeepSpeed process on CPU needs (TOOLCHAIN.md): the CPU accelerator, one thread per
    rank, and a shared cache for the JIT-compiled communication op."""
    EXTENSIONS_CACHE.mkdir(parents=True, exist_ok=True)
    return {
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": str(threads),
        "TORCH_EXTENSIONS_DIR": str(EXTENSIONS_CACHE),
        "TOKENIZERS_PARALLELISM": "false",
    }


def job_spec(**overrides: Any) -> dict:
    """A tiny, fast RecipeTrainingJob spec (camelCase, as in a manifest); `overrides` are merged
    one level deep, e.g. training={"maxSteps": 4}."""
    spec: dict[str, Any] = {
        "model": {"name": "tiny-t5", "init": "scratch", "config": dict(TINY_T5)},
        "dataset": {"path": str(SAMPLE_CSV), "validationFraction": 0.05, "maxRecipes": 400},
        "training": {
            "epochs": 1,
            "microBatchSize": 4,
            "gradientAccumulationSteps": 2,
            "learningRate": 3e-3,
            "maxSourceLength": 32,
            "maxTargetLength": 96,
            "precision": "fp32",
            "seed": 11,
            "scheduler": {"type": "constant", "warmupSteps": 2},
        },
        "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.1},
        "curriculum": {"enabled": False},
        "augmentation": {"probability": 0.0},
        "validation": {"everySteps": 1000, "maxBatches": 2, "samples": 0},
        "checkpoint": {"everySteps": 1000, "keepLast": 2},
        "deepspeed": {"zeroStage": 2},
        "resources": {"gpusPerNode": 0, "cpu": "2", "memory": "4Gi"},
        "metrics": {"port": free_port()},
    }
    for key, value in overrides.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


def trainer_config(root: Path, **overrides: Any) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "name": "tiny",
            "spec": job_spec(**overrides),
            "runtime": {
                "checkpointDir": str(root / run_layout.CHECKPOINTS_DIR),  # as local mode lays a run out
                "runDir": str(root),
                "terminationLog": str(root / run_layout.TERMINATION_FILE),
                "cacheDir": str(root / run_layout.CACHE_DIR),
            },
        }
    )


@pytest.fixture
def single_process(monkeypatch):
    """Environment of a one-rank DeepSpeed run inside the test process."""
    for key, value in {
        **cpu_deepspeed_env(threads=os.cpu_count() or 1),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(key, value)
    yield
    from deepspeed import comm as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------- real runs of `recipe-train local`


def write_manifest(path: Path, name: str = "tiny", **overrides: Any) -> Path:
    import yaml

    manifest = {
        "apiVersion": "training.chefgenius.io/v1alpha1",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name},
        "spec": job_spec(**overrides),
    }
    path.write_text(yaml.safe_dump(manifest))
    return path


def local_command(manifest: Path, run_dir: Path, processes: int) -> list[str]:
    import sys

    return [
        sys.executable, "-m", "recipe_trainer.cli", "local", str(manifest),
        "--processes", str(processes), "--run-dir", str(run_dir),
    ]  # fmt: skip


def local_env() -> dict[str, str]:
    """The environment of `recipe-train local` in tests: CPU DeepSpeed and a wide terminal."""
    return {**os.environ, **cpu_deepspeed_env(), "COLUMNS": "120"}


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (sessions included), as a node failure would."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
