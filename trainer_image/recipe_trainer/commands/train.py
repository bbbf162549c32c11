"""`recipe-train train --config trainer-config.yaml`: what the DeepSpeed launcher starts on every
rank, in pods and in local mode. It reads the resolved TrainerConfig, runs the recipe and leaves
its last word in the termination log: the JSON summary on success, one line of reason otherwise.

Exit codes: 0 done; 1 failed (reason in the termination log); 130 / 143 stopped by SIGINT /
SIGTERM after writing a checkpoint (not done: run again, or the operator restarts the gang);
141 (contract.EXIT_CODE_PEER_LOST) another rank vanished or hung in a collective: this rank is a
victim, and the operator restarts the gang (a retryable code, 128+).

Launch it with the launcher's `--no_local_rank`: each rank reads LOCAL_RANK from its environment,
and a `--local_rank=N` placed before the sub-command would not parse.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from recipe_api.contract import EXIT_CODE_PEER_LOST
from recipe_api.trainer_config import CONFIG_FILE_NAME, CONFIG_MOUNT_PATH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=f"{CONFIG_MOUNT_PATH}/{CONFIG_FILE_NAME}",
        help="the resolved trainer config (TrainerConfig YAML)",
    )
    parser.add_argument(
        "--resume-from",
        default=None,
        metavar="PATH",
        help="resume from this checkpoint (or checkpoint root) instead of the newest one",
    )


def run(args: argparse.Namespace) -> int:
    from recipe_api.trainer_config import TrainerConfig

    from ..data.split import check_usable
    from ..training.recipe import StopRequested, TrainingRecipe
    from ..training.records import Crashed
    from ..training.termination import (
        first_failure,
        is_peer_lost,
        is_unsupported_gpu,
        peer_lost_message,
        unsupported_gpu_message,
        write_failure,
        write_success,
    )

    rank = int(os.environ.get("RANK", "0"))
    configure_logging(rank)
    config = TrainerConfig.from_yaml(Path(args.config).read_text())
    termination_log = config.runtime.termination_log
    try:  # unusable data stops here, in one line, before DeepSpeed and the model start
        check_usable(config.spec.dataset)
    except (FileNotFoundError, ValueError) as exc:
        if first_failure(termination_log):  # (it prints the line too)
            write_failure(f"spec.{exc}", termination_log)
        else:
            print(f"training failed: spec.{exc}", file=sys.stderr)
        return 1
    recipe = TrainingRecipe(config, resume_from=args.resume_from)
    try:
        recipe.setup()
        summary = recipe.train()
    except StopRequested as stop:
        if rank == 0:
            write_failure(f"Interrupted: {stop}", termination_log)
        recipe.cleanup()
        return 128 + int(stop.signum)
    except BaseException as exc:  # OOM, divergence, bad data...: one line, non-zero exit
        peer_lost = is_peer_lost(exc)
        reason: str | BaseException = exc
        if peer_lost:
            reason = peer_lost_message(exc)
        elif is_unsupported_gpu(exc):
            reason = unsupported_gpu_message(exc, *gpu_and_image_archs())
        if first_failure(termination_log):  # another rank's crash is the reason, not its echo here
            write_failure(reason, termination_log)
        recipe.reporter.report(Crashed(str(exc), recipe.progress.step))
        if os.environ.get("RECIPE_TRAINER_TRACEBACK"):
            raise
        import traceback

        traceback.print_exc()
        return EXIT_CODE_PEER_LOST if peer_lost else 1
    if rank == 0:
        write_success(summary, termination_log)
    recipe.cleanup()
    return 0


def gpu_and_image_archs() -> tuple[str, list[str]]:
    """This rank's GPU (name and sm_XY) and the CUDA architectures the image's torch was built
    for: what an UnsupportedGPU failure names."""
    import torch

    archs = torch.cuda.get_arch_list()
    try:  # asked after a CUDA error: the failure message must not fail itself
        major, minor = torch.cuda.get_device_capability()
        return f"{torch.cuda.get_device_name()} (sm_{major}{minor})", archs
    except Exception:
        return "this GPU", archs


def configure_logging(rank: int) -> None:
    """Rank 0 tells the story (INFO); the other ranks speak only of trouble, so N ranks do not
    print N copies of every line. The tokenizers' thread pool stays off in pods as local mode's
    launcher turns it off (`recipe_api.launch.trainer_launch`): each rank has its threads already."""
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
