"""This rank and its peers: every collective the loop makes, and what all ranks decide together.

Each collective runs under the `collective_watchdog`, bounded by runPolicy.collectiveTimeoutSeconds:
a peer that hangs or vanishes ends this rank with `contract.EXIT_CODE_PEER_LOST` (so the operator
restarts the gang) instead of a hang. Decisions that change the control flow (a non-finite loss,
a stop request) are all-reduced, so every rank takes the same branch at the same step.

Stop requests: SIGINT (Ctrl-C in local mode) or SIGTERM (pod preemption) on any rank asks every
rank to checkpoint at the end of the step and stop.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import deepspeed
import torch
from deepspeed import comm as dist
from recipe_api.contract import EXIT_CODE_PEER_LOST

from .collective_watchdog import CollectiveWatchdog
from .termination import first_failure, peer_lost_message, write_failure

log = logging.getLogger("recipe_trainer")

# What makes a lost or hung NCCL peer fail fast and legibly. The process group's timeout is
# runPolicy.collectiveTimeoutSeconds (passed to init_distributed below); on a collective error or
# that timeout, torch's watchdog (mode 1, TearDown) aborts the communicators and ends the rank
# instead of leaving it blocked, and NCCL prints its own WARN lines ("Connection closed by remote
# peer"), which land in the log tail the operator classifies (recipe_operator.failures). Set in
# the rank itself with setdefault, not as pod env: a value the user sets (spec.resources.env or
# envFrom) wins, and Kubernetes would let an explicit pod env override envFrom silently.
NCCL_DEFAULTS = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "NCCL_DEBUG": "WARN"}


def set_nccl_defaults(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """Set NCCL_DEFAULTS where the environment has no value; returns what it set."""
    unset = {name: value for name, value in NCCL_DEFAULTS.items() if name not in environ}
    environ.update(unset)
    return unset


# DeepSpeed's CPU all-reduce (its shm comm op, when every rank is on one machine) creates one POSIX
# shared-memory file per rank, 67 MB, and never removes it: each local run left 67 MB of RAM per rank
# in /dev/shm (found at 260 files, 17 GB, when the OOM killer took a training run). init_distributed
# maps every peer's file before it returns, so once all ranks are past it the names can go: the
# memory lives while a rank maps it and is freed when the last one exits, however it exits.
DEEPSPEED_SHM_BUFFER = "/dev/shm/deepspeed_allreduce_buffer_{uid}_{addr}_{port}_{rank}"


def shared_memory_name(rank: int | str, environ: dict[str, str] | os._Environ = os.environ) -> Path:
    """The /dev/shm file DeepSpeed's shm comm op names after the rendezvous (shm.cpp); a rank of
    "*" makes a glob pattern of every rank's."""
    return Path(
        DEEPSPEED_SHM_BUFFER.format(
            uid=os.getuid(),
            addr=environ.get("MASTER_ADDR", ""),
            port=environ.get("MASTER_PORT", ""),
            rank=rank,
        )
    )


def remove_shared_memory_name(rank: int) -> None:
    """Unlink this rank's buffer name (none there: the op did not start, nothing to do)."""
    shared_memory_name(rank).unlink(missing_ok=True)


class Ranks:
    """Joins the process group; `device` is set once the engine has placed the model."""

    def __init__(self, timeout_seconds: float, termination_log: str):
        # A deliberate bound on every collective (runPolicy.collectiveTimeoutSeconds), not DeepSpeed's
        # 10-minute DEEPSPEED_TIMEOUT default: a hung peer ends the gang with PeerLost, never a hang.
        if torch.cuda.is_available():  # NCCL reads these when the process group starts
            set_nccl_defaults(os.environ)
        deepspeed.init_distributed(timeout=timedelta(seconds=timeout_seconds))
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.termination_log = termination_log
        self.device: torch.device | str = "cpu"
        self.stop_signal: int | None = None
        # in case gloo does not time out (collective_watchdog); one rank has no peer to wait for
        self.watchdog = CollectiveWatchdog(timeout_seconds, self._peer_lost, enabled=self.world_size > 1)
        if self.world_size > 1:
            self.barrier()  # every rank has mapped every peer's shared-memory buffer by now
        remove_shared_memory_name(self.rank)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._request_stop)

    def all_reduce(self, values: list[float]) -> list[float]:
        """The sums over all ranks (float64)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            with self.watchdog.guard("all_reduce"):
                dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast_from_main(self, value: int) -> int:
        """Rank 0's `value` on every rank (e.g. the checkpoint step all ranks resume from). Before
        the engine has placed the model, an NCCL group still needs the tensor on this rank's GPU."""
        if self.world_size == 1:
            return value
        device = self.device
        if str(device) == "cpu" and torch.cuda.is_available():  # NCCL: DeepSpeed's backend on CUDA
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        with self.watchdog.guard("broadcast"):
            dist.broadcast(tensor, src=0)
        return int(tensor.item())

    def barrier(self) -> None:
        with self.watchdog.guard("barrier"):
            dist.barrier()

    def all_finite(self, value: torch.Tensor) -> bool:
        """True when this micro-batch's loss is finite on every rank (all ranks take the same branch)."""
        (bad,) = self.all_reduce([0.0 if torch.isfinite(value) else 1.0])
        return bad == 0.0

    def stop_requested(self) -> bool:
        """Whether any rank got SIGINT/SIGTERM: decided together, so all ranks stop at one step."""
        (flag,) = self.all_reduce([1.0 if self.stop_signal is not None else 0.0])
        if flag and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        return bool(flag)

    def close(self) -> None:
        if dist.is_initialized():
            self.barrier()
            dist.destroy_process_group()

    def _request_stop(self, signum: int, _frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            if self.is_main:
                log.info(
                    f"{signal.Signals(signum).name}: checkpointing at the end of this step, then stopping"
                )

    def _peer_lost(self, what: str, seconds: float) -> None:
        """The watchdog's verdict (`collective_watchdog`): leave as a transport timeout would."""
        error = TimeoutError(f"{what} still waiting for another rank after {seconds:.0f} s")
        if first_failure(self.termination_log):
            write_failure(peer_lost_message(error), self.termination_log)
        else:
            print(f"training failed: {peer_lost_message(error)}", file=sys.stderr, flush=True)
        os._exit(EXIT_CODE_PEER_LOST)  # the training thread is stuck in the collective: no clean exit
