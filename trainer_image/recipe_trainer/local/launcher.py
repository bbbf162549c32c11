"""Starting the trainer with the DeepSpeed launcher on this machine (local mode).

The same `recipe-train train` entry point runs here as in pods, launched the same way
(`recipe_api.launch.trainer_launch`): one node, `--num_gpus N` processes, N and the device chosen
from this machine's hardware.

The launcher runs in its own session so that Ctrl-C in the terminal reaches only `recipe-train
local`, which then asks the ranks themselves to stop (`request_stop`): DeepSpeed's launcher would
answer a SIGINT by killing the ranks before they could write their checkpoint. That session dies
with the CLI however the CLI ends (`process_tree`: parent-death signal and a watchdog).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from recipe_api.launch import TrainerLaunch


@dataclass(frozen=True)
class Hardware:
    gpus: int
    cpus: int

    @classmethod
    def detect(cls) -> Hardware:
        try:
            import torch

            gpus = torch.cuda.device_count()
        except Exception:
            gpus = 0
        return cls(
            gpus=gpus,
            cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        )


def default_processes(hardware: Hardware, wants_gpus: bool) -> int:
    """All GPUs when the job asks for GPUs and there are some, else one rank using every core
    (local mode then picks the CPU layout measured faster: `rank_layout`)."""
    return hardware.gpus if wants_gpus and hardware.gpus else 1


def launch_environment(
    base: Mapping[str, str], launch: TrainerLaunch, extensions_dir: str | Path
) -> dict[str, str]:
    """`base` (this shell's environment) with what the ranks need (the launch's `env`) on top; the
    JIT-compiled DeepSpeed ops are cached in `extensions_dir` unless the shell names a cache."""
    env = dict(base)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir))
    env.update(launch.env)
    return env


@contextlib.contextmanager
def started(
    command: list[str], env: Mapping[str, str], log_path: Path, keep_open: tuple[int, ...] = ()
) -> Iterator[subprocess.Popen]:
    """Run the launcher in its own session, its output going to `log_path`; nothing of it
    survives leaving the block or the death of this process (`process_tree.guarded_session`).
    `keep_open`: descriptors (the run directory's lock) held until the last trainer process ends."""
    from .process_tree import guarded_session

    with guarded_session(command, env, log_path, keep_open) as process:
        yield process


def trainer_processes(launcher: subprocess.Popen) -> list:
    """The rank processes under the launcher (`process_tree.rank_processes`)."""
    import psutil

    from .process_tree import rank_processes

    try:
        return rank_processes(psutil.Process(launcher.pid))
    except psutil.NoSuchProcess:
        return []


def request_stop(launcher: subprocess.Popen) -> int:
    """Ask every rank to checkpoint and stop (SIGINT, handled by the recipe); returns how many."""
    ranks = trainer_processes(launcher)
    for rank in ranks:
        with contextlib.suppress(Exception):
            rank.send_signal(signal.SIGINT)
    return len(ranks)


def kill(launcher: subprocess.Popen) -> None:
    """Stop everything now (a second Ctrl-C)."""
    from .process_tree import kill_group

    kill_group(launcher.pid)
