"""Where things live in a checkpoint directory, and reading them: the contract between the
training loop (which writes checkpoints: `checkpointing`) and resume, eval / compare / export /
generate (which read them here, and only here).

    <checkpoint_dir>/
      base-model/            init: scratch only: the randomly initialised base weights + config,
                             written once, so adapters have a base to load onto offline
      step-00000120/         one complete checkpoint (renamed from .tmp-step-00000120 when done)
        model/               PEFT adapter (save_pretrained) or, with LoRA off, the full model
        tokenizer/           the tokenizer (trained on the data for scratch models)
        deepspeed/           DeepSpeed engine state (optimizer, scheduler), per rank
          rank-00000.pt      that rank's RNG states, data position and noise generators
        trainer_state.json   progress: step, epoch, position, sampler/curriculum/RNG states ...
        trainer-config.yaml  the TrainerConfig the run used
      best.json              {"step": N, "path": "step-...", "validation_loss": x}

A checkpoint is complete only once its directory has its final name: writers build it under
a `.tmp-` name and rename atomically, so a crash mid-write never looks like a checkpoint.
Step directories are named by `recipe_api.contract.checkpoint_step_dir` (the operator reports
them too); the trainer config's file name is the one the operator mounts (`CONFIG_FILE_NAME`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipe_api.contract import checkpoint_step_of
from recipe_api.trainer_config import CONFIG_FILE_NAME, TrainerConfig

BASE_MODEL_DIR = "base-model"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
DEEPSPEED_DIR = "deepspeed"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = CONFIG_FILE_NAME
BEST_FILE = "best.json"
EVAL_FILE = "eval.json"  # `recipe-train eval` writes its numbers beside the checkpoint
TMP_PREFIX = ".tmp-"


def complete_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored)."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and checkpoint_step_of(p.name) is not None and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: checkpoint_step_of(p.name))


def newest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    found = complete_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def best_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The checkpoint marked best by validation loss, or None when none is marked."""
    marker = Path(checkpoint_dir) / BEST_FILE
    if not marker.is_file():
        return None
    path = Path(checkpoint_dir) / json.loads(marker.read_text())["path"]
    return path if (path / STATE_FILE).is_file() else None


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint directory or a checkpoint root (then the best, else the newest)."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    found = best_checkpoint(p) or newest_checkpoint(p)
    if found is None:
        raise FileNotFoundError(
            f"{path}: no complete checkpoint here (expected {STATE_FILE} or step-* directories)"
        )
    return found


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """`trainer_state.json`: step, epoch, world size, progress, early stopping, data position..."""
    return json.loads((checkpoint / STATE_FILE).read_text())


def read_trainer_config(checkpoint: Path) -> TrainerConfig | None:
    """The TrainerConfig the run used; None for a checkpoint written without one."""
    path = checkpoint / CONFIG_FILE
    return TrainerConfig.from_yaml(path.read_text()) if path.is_file() else None


class CheckpointOfAnotherJob(ValueError):
    """A checkpoint in this job's directory that another job wrote: never resumed from."""


def check_owner(checkpoint: Path, namespace: str | None, name: str) -> None:
    """Refuse, in one line, a checkpoint whose trainer-config.yaml records another job (namespace
    and name; the uid is recorded but not compared, so a job created again under the same name
    resumes). One written without a config is accepted: there is nothing to compare."""
    config = read_trainer_config(checkpoint)
    if config is not None and (config.namespace, config.name) != (namespace, name):
        theirs = f"{config.namespace}/{config.name}" if config.namespace else config.name
        ours = f"{namespace}/{name}" if namespace else name
        raise CheckpointOfAnotherJob(
            f"checkpoint {checkpoint} was written by job {theirs}, not {ours}; it is not resumed from "
            "(move it away, or name it with --resume-from to start from it on purpose)"
        )


def rank_state_file(checkpoint: Path, rank: int) -> Path:
    """One rank's RNG states, data position and noise generators (`checkpointing.load_rank_state`)."""
    return checkpoint / DEEPSPEED_DIR / f"rank-{rank:05d}.pt"
