"""The command a trainer pod runs, end to end across the operator/trainer boundary.

The operator builds the container's command (`python -m <pod supervisor>`, PID 1) and the
arguments the supervisor hands to DeepSpeed's launcher; the launcher parses them and starts
`python -m <module> [--local_rank=N] <user args>` per rank; the trainer's CLI must accept exactly
that. Each side is the real code, not a copy of its strings.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from deepspeed.launcher.runner import parse_args
from manifest_fixtures import minimal_manifest, with_value
from recipe_api import parse_job
from recipe_api.trainer_config import CONFIG_FILE_NAME, CONFIG_MOUNT_PATH
from recipe_operator.builders import build_job
from recipe_trainer.cli import build_parser


@pytest.mark.parametrize(
    "resources",
    [{"nodes": 1, "gpusPerNode": 0}, {"nodes": 1, "gpusPerNode": 4}, {"nodes": 2, "gpusPerNode": 8}],
    ids=["cpu", "one-node", "two-nodes"],
)
def test_operator_launch_arguments_reach_the_trainer_cli(resources):
    job = parse_job(with_value(minimal_manifest(), "spec.resources", resources))
    (container,) = build_job(job, "uid", 1, "trainer:1")["spec"]["template"]["spec"]["containers"]
    # The kubelet expands $(JOB_COMPLETION_INDEX) from the pod's environment.
    command = [a.replace("$(JOB_COMPLETION_INDEX)", "1") for a in container["command"] + container["args"]]
    python, flag, module, *supervisor_args = command
    assert (python, flag) == ("python", "-m")
    # PID 1 runs the launcher the `deepspeed` script runs, with this interpreter.
    launcher_command = importlib.import_module(module).launcher_command(supervisor_args)
    assert launcher_command[:2] == [sys.executable, "-m"]
    launcher_module, launcher_args = launcher_command[2], launcher_command[3:]
    assert f"from {launcher_module} import main" in (Path(sys.executable).parent / "deepspeed").read_text()
    launcher = parse_args(launcher_args)
    assert launcher.module and launcher.user_script == "recipe_trainer.cli"
    if resources["nodes"] > 1:
        assert (launcher.no_ssh, launcher.node_rank) == (True, 1)
        assert launcher.master_addr.startswith(f"{job.metadata.name}-0.")
    # What deepspeed.launcher.launch appends per rank unless --no_local_rank is given.
    per_rank = ([] if launcher.no_local_rank else ["--local_rank=0"]) + launcher.user_args
    parsed = build_parser().parse_args(per_rank)
    assert parsed.command == "train"
    assert parsed.config == f"{CONFIG_MOUNT_PATH}/{CONFIG_FILE_NAME}"
