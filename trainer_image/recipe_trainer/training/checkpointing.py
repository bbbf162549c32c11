"""Writing checkpoints in the layout of `checkpoint_layout`, atomically, and loading the parts
only a resuming trainer reads (the DeepSpeed engine state and each rank's torch-saved state);
everything else a checkpoint holds is read in `checkpoint_layout`.

A checkpoint is built under `.tmp-step-N` and renamed to `step-N` by rank 0 only when every rank
has written its part, so a crash (or SIGKILL) at any moment leaves either the complete new
checkpoint or none: `checkpoint_layout.newest_checkpoint` never sees half of one. Leftover
`.tmp-` directories from a crash are removed before the next write.

What each rank writes:
* all ranks: their DeepSpeed shards (`deepspeed/`, frozen base weights excluded: the base comes
  from `model.name` or `base-model/`), and `deepspeed/rank-N.pt` with their RNG states (`rng`),
  data position and gradient-noise generators: everything a resumed rank needs to draw exactly
  what it would have drawn;
* rank 0: the adapter or full model (`model/`), the tokenizer, the TrainerConfig and, last,
  `trainer_state.json`, then the rename, `best.json` and pruning to the last K plus the best.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal
from recipe_api.contract import checkpoint_step_dir, checkpoint_step_of

from .. import checkpoint_layout as layout

DEEPSPEED_TAG = "state"


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class CheckpointWriter:
    """Saves checkpoints of one run; `barrier` synchronises all ranks (a no-op with one)."""

    def __init__(self, checkpoint_dir: str | Path, rank: int, keep_last: int, barrier: Callable[[], None]):
        self.root = Path(checkpoint_dir)
        self.rank = rank
        self.keep_last = keep_last
        self.barrier = barrier

    def save(
        self,
        step: int,
        engine: Any,
        tokenizer: Any,
        config_yaml: str,
        trainer_state: dict[str, Any],
        rank_state: dict[str, Any],
        best: bool = False,
    ) -> tuple[Path, float, int]:
        """Write the checkpoint of `step`; returns (path, seconds, bytes). Every rank calls it."""
        started = time.monotonic()
        final = self.root / checkpoint_step_dir(step)
        tmp = self.root / (layout.TMP_PREFIX + final.name)
        if self.rank == 0:
            self._remove_leftovers()
            tmp.mkdir(parents=True)
        self.barrier()
        engine.save_checkpoint(
            str(tmp / layout.DEEPSPEED_DIR),
            tag=DEEPSPEED_TAG,
            save_latest=False,
            exclude_frozen_parameters=True,
        )
        torch.save(rank_state, layout.rank_state_file(tmp, self.rank))
        self.barrier()
        if self.rank == 0:
            self._write_rank0_part(tmp, engine, tokenizer, config_yaml, trainer_state)
            if final.exists():  # the same step saved again (e.g. best after a periodic save)
                shutil.rmtree(final)
            os.rename(tmp, final)
            if best:
                self.mark_best(final, trainer_state.get("best_metric"))
            self.prune()
        self.barrier()
        size = directory_size(final) if self.rank == 0 else 0
        return final, time.monotonic() - started, size

    def _write_rank0_part(
        self, tmp: Path, engine: Any, tokenizer: Any, config_yaml: str, state: dict
    ) -> None:
        engine.module.save_pretrained(tmp / layout.MODEL_DIR)
        tokenizer.save_pretrained(tmp / layout.TOKENIZER_DIR)
        (tmp / layout.CONFIG_FILE).write_text(config_yaml)
        write_trainer_state(tmp, state)  # last: its presence is what makes a checkpoint complete

    def mark_best(self, checkpoint: Path, metric: float | None) -> None:
        marker = {
            "step": checkpoint_step_of(checkpoint.name),
            "path": checkpoint.name,
            "validation_loss": metric,
        }
        tmp = self.root / (layout.TMP_PREFIX + layout.BEST_FILE)
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, self.root / layout.BEST_FILE)

    def prune(self) -> None:
        """Keep the newest `keep_last` complete checkpoints and the best one."""
        best = layout.best_checkpoint(self.root)
        for old in layout.complete_checkpoints(self.root)[: -self.keep_last]:
            if best is None or old.resolve() != best.resolve():
                shutil.rmtree(old, ignore_errors=True)

    def _remove_leftovers(self) -> None:
        for leftover in self.root.glob(layout.TMP_PREFIX + "*"):
            if checkpoint_step_of(leftover.name.removeprefix(layout.TMP_PREFIX)) is not None:
                shutil.rmtree(leftover, ignore_errors=True)


def write_trainer_state(checkpoint: Path, state: dict[str, Any]) -> None:
    (checkpoint / layout.STATE_FILE).write_text(json.dumps(state, indent=1))


# What a rank state holds besides tensors and plain Python values: numpy's RNG state, an array
# (`rng.capture_rng_state`). These globals, and nothing else, may appear in the pickle.
RANK_STATE_GLOBALS = [
    np.ndarray(0).__reduce__()[0],  # numpy's array reconstructor (numpy._core.multiarray._reconstruct)
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def load_rank_state(checkpoint: Path, rank: int) -> dict[str, Any] | None:
    """A rank's saved RNG, data position and noise state, unpickled with torch's weights-only
    loader: a checkpoint someone else wrote (a shared claim, --resume-from) may hold a pickle that
    runs code when fully unpickled (issue 23, finding 8). The DeepSpeed shards are still loaded by
    DeepSpeed with full unpickling: docs/security.md says which checkpoint files are trusted."""
    path = layout.rank_state_file(checkpoint, rank)
    if not path.is_file():
        return None
    with torch.serialization.safe_globals(RANK_STATE_GLOBALS):
        return torch.load(path, weights_only=True)


def load_engine_state(
    engine: Any, checkpoint: Path, is_main: bool, barrier: Callable[[], None], reshard_dir: Path | None = None
) -> None:
    """Load the DeepSpeed state `CheckpointWriter.save` wrote (trained weights, optimizer) into
    `engine`; every rank calls it. A checkpoint of another world size is given `reshard_dir`, a
    scratch directory: rank 0 re-shards the optimizer state there for this world size
    (`convert_to_universal`; the engine was built with `load_universal`), all ranks load it, and it
    is removed again."""
    if reshard_dir is not None:
        if is_main:
            convert_to_universal(checkpoint, reshard_dir)
        barrier()
    engine.load_checkpoint(
        str(reshard_dir if reshard_dir is not None else checkpoint / layout.DEEPSPEED_DIR),
        tag=DEEPSPEED_TAG,
        load_module_strict=False,  # frozen base weights are not in the checkpoint
        load_optimizer_states=True,
        load_lr_scheduler_states=False,  # the learning rate is the schedule's, set every step
    )
    if reshard_dir is not None:
        barrier()
        if is_main:
            shutil.rmtree(reshard_dir, ignore_errors=True)


def convert_to_universal(checkpoint: Path, target: Path) -> Path:
    """Re-shard a checkpoint's ZeRO optimizer state for any world size: DeepSpeed's universal
    checkpoint (one file per parameter and state) under `target/<DEEPSPEED_TAG>`, built in a
    temporary directory and renamed, so a crash never leaves half of one. Our checkpoints do not
    carry `universal_checkpoint_info`; DeepSpeed's own `inject_missing_state` adds it."""
    tmp = target.with_name(layout.TMP_PREFIX + target.name)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    ds_to_universal(
        argparse.Namespace(
            input_folder=str(checkpoint / layout.DEEPSPEED_DIR / DEEPSPEED_TAG),
            output_folder=str(tmp / DEEPSPEED_TAG),
            num_extract_workers=1,
            num_merge_workers=1,
            keep_temp_folder=False,
            strict=True,
            inject_missing_state=True,
        )
    )
    os.rename(tmp, target)
    return target


def agreed_checkpoint(
    mine: Path | None, root: str | Path, rank: int, broadcast_from_main: Callable[[int], int]
) -> Path | None:
    """The checkpoint every rank resumes from: rank 0's choice. Each rank picks the newest from its
    own listing, and on NFS with attribute caching two nodes can see different newest steps right
    after a restart; loading different steps would mix two states. Rank 0 broadcasts its step (-1:
    a fresh start) and every rank loads that one, or fails saying it cannot see it."""
    step = broadcast_from_main(checkpoint_step_of(mine.name) if mine is not None else -1)
    if step < 0:
        return None
    if mine is not None and checkpoint_step_of(mine.name) == step:
        return mine
    chosen = (mine.parent if mine is not None else Path(root)) / checkpoint_step_dir(step)
    if not (chosen / layout.STATE_FILE).is_file():
        raise FileNotFoundError(
            f"rank {rank} cannot see {chosen}, the checkpoint rank 0 resumes from: the checkpoint volume "
            "must be one volume shared by every node (ReadWriteMany), with current directory listings"
        )
    return chosen


def find_resume_checkpoint(
    checkpoint_dir: str | Path, resume_from: str | None, namespace: str | None, name: str
) -> Path | None:
    """The named checkpoint (a directory, or a root whose best/newest is taken), else the newest
    complete one under the run's checkpoint directory, else None (a fresh start). The newest one
    found must be this job's (`checkpoint_layout.check_owner`); one named is taken as named."""
    if resume_from:
        return layout.resolve_checkpoint(resume_from)
    newest = layout.newest_checkpoint(checkpoint_dir)
    if newest is not None:
        layout.check_owner(newest, namespace, name)
    return newest
