"""How the trainer is started, wherever it runs: the DeepSpeed launcher running `recipe-train train`.

The Job builder (a pod per node, under the pod supervisor), local mode and the benchmarks all start
the same ranks the same way, so the command, its arguments and the environment the ranks need are
built here once, from the run's `TrainerConfig`. Only what the caller alone knows is passed in: how
many ranks this machine runs, the rendezvous port, and for several nodes how the pods find rank 0.
Kubernetes-only environment (secret references, the completion index) stays with the Job builder.

On CPU, `DS_ACCELERATOR=cpu` and `OMP_NUM_THREADS = cores / ranks` per rank (the launcher sets no
thread count, and N ranks each using every core slow down several-fold). The tokenizers' own
thread pool stays off: each rank has its threads already.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from .contract import POD_SUPERVISOR_MODULE, TRAINER_MODULE
from .trainer_config import TrainerConfig

DEEPSPEED_LAUNCHER_MODULE = "deepspeed.launcher.runner"


@dataclass(frozen=True)
class Rendezvous:
    """Several nodes without SSH: each pod runs its own launcher with its node rank."""

    hostfile: str
    node_rank: str  # "$(JOB_COMPLETION_INDEX)" in a pod: Kubernetes expands it from the env
    master_addr: str


@dataclass(frozen=True)
class TrainerLaunch:
    command: list[str]  # the program: the pod supervisor or the DeepSpeed launcher
    args: list[str]  # the launcher's arguments, then `train --config ...`
    env: dict[str, str]  # what the ranks need on top of the caller's environment

    @property
    def argv(self) -> list[str]:
        return [*self.command, *self.args]


def trainer_launch(
    config: TrainerConfig,
    config_path: str | Path,
    *,
    master_port: int,
    processes: int | None = None,
    on_gpu: bool | None = None,
    cpus: int | None = None,
    rendezvous: Rendezvous | None = None,
    resume_from: str | None = None,
    python: str = "python",
    supervised: bool = False,
) -> TrainerLaunch:
    """The launch of `config`'s ranks on one node.

    `processes` and `on_gpu` default to what the spec asks for (one rank per GPU, at least one);
    local mode passes what this machine has. `cpus`: the cores the ranks share (sets
    OMP_NUM_THREADS, on CPU and GPU alike). `supervised`: start the launcher under the pod supervisor (PID 1 of a
    pod, which forwards the kubelet's SIGTERM to the ranks).
    """
    resources = config.spec.resources
    if resources.nodes > 1 and rendezvous is None:
        raise ValueError(f"{resources.nodes} nodes need a rendezvous (hostfile, node rank, master address)")
    processes = processes if processes is not None else max(1, resources.gpus_per_node)
    on_gpu = on_gpu if on_gpu is not None else resources.gpus_per_node > 0
    args: list[str] = []
    if rendezvous is not None:
        args += [
            "--hostfile",
            rendezvous.hostfile,
            "--no_ssh",
            f"--node_rank={rendezvous.node_rank}",
            f"--master_addr={rendezvous.master_addr}",
        ]
    args += [
        f"--master_port={master_port}",
        "--num_gpus",
        str(processes),
        # Ranks read LOCAL_RANK from the environment; a --local_rank argument would land before
        # the `train` sub-command, where the trainer's CLI rejects it.
        "--no_local_rank",
        "--module",
        TRAINER_MODULE,
        "train",
        "--config",
        str(config_path),
    ]
    if resume_from:
        args += ["--resume-from", str(resume_from)]
    env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not on_gpu:
        env["DS_ACCELERATOR"] = "cpu"
    if cpus is not None:  # else each rank sizes its thread pools to every core of the machine
        env["OMP_NUM_THREADS"] = str(max(1, cpus // processes))
    program = POD_SUPERVISOR_MODULE if supervised else DEEPSPEED_LAUNCHER_MODULE
    return TrainerLaunch(command=[python, "-m", program], args=args, env=env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a rendezvous or metrics port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
