"""`recipe-train local` as a newcomer uses it: a progress bar, Ctrl-C that checkpoints and stops,
the same command resuming and saying so, and at the end the curves and a generated recipe; one
run per run directory, and no process left behind however the command ends."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from recipe_api.launch import free_port
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer import run_layout
from recipe_trainer.commands.local import _stop_signals_interrupt
from recipe_trainer.run_log import read_run_log
from recipe_trainer.training.ranks import shared_memory_name
from recipe_trainer.user_cache import CPU_COMM_OP, extension_built, extensions_dir
from rich.console import Console

from .conftest import local_command, local_env, write_manifest
from .test_process_tree import GRACE_S, MARKER, marked, wait_until_free

TIMEOUT = 300
SLOW_START_TIMEOUT = 900  # DeepSpeed start + data + model on a loaded 2-core machine


def test_ctrl_c_checkpoints_and_running_again_resumes_to_the_end(tmp_path):
    manifest = write_manifest(
        tmp_path / "job.yaml",
        name="local-demo",
        training={"maxSteps": 12},
        validation={"everySteps": 6, "maxBatches": 2, "samples": 1},
    )
    env = local_env()
    command = local_command(manifest, tmp_path / "runs", processes=1)
    job_dir = tmp_path / "runs" / "local-demo"
    elsewhere = tmp_path / "elsewhere"  # a folder that is not the repository, as a user's would be
    elsewhere.mkdir()

    first = subprocess.Popen(
        command, env=env, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + TIMEOUT
    while not any(e["event"] == "step" for e in read_run_log(job_dir)):
        assert first.poll() is None and time.monotonic() < deadline, "no training step before the deadline"
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
    output, _ = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 128 + signal.SIGINT, output
    assert "run the same command again to resume" in output
    stopped_at = layout.newest_checkpoint(job_dir / run_layout.CHECKPOINTS_DIR)
    assert stopped_at is not None, output
    stopped_step = int(stopped_at.name.removeprefix("step-"))
    assert 0 < stopped_step < 12

    second = subprocess.run(command, env=env, cwd=elsewhere, capture_output=True, text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stdout[-3000:]
    assert list(elsewhere.iterdir()) == []  # no .cache/, no build, nothing left in the user's folder
    assert "DeepSpeed compiles" not in second.stdout  # built once, by the first run at the latest
    assert extension_built(CPU_COMM_OP, extensions_dir(env))
    assert f"resumed from step {stopped_step}" in second.stdout
    assert "step 12/12  loss" in second.stdout  # no terminal here: plain progress lines, to the end
    assert "step 12/12: loss" in (job_dir / run_layout.OUTPUT_FILE).read_text()  # a line a step in the log
    assert (job_dir / run_layout.CURVES_FILE).stat().st_size > 0
    assert str(job_dir / run_layout.CURVES_FILE) in second.stdout.replace("\n", "")
    assert "a recipe from the trained model" in second.stdout
    assert "quality score:" in second.stdout
    steps = {e["step"] for e in read_run_log(job_dir) if e["event"] == "step"}
    assert steps == set(range(1, 13))


def test_a_missing_dataset_is_reported_before_anything_starts(tmp_path):
    manifest = write_manifest(tmp_path / "job.yaml", name="no-data", dataset={"path": "missing/recipes.csv"})
    result = subprocess.run(
        local_command(manifest, tmp_path / "runs", processes=1),
        env=local_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stdout.splitlines() if "spec.dataset.path" in line]
    assert len(lines) == 1 and "does not exist" in lines[0] and "missing/recipes.csv" in lines[0]
    assert not (tmp_path / "runs" / "no-data" / run_layout.OUTPUT_FILE).exists()  # no trainer was launched


def test_data_with_no_usable_row_is_reported_in_one_line_before_anything_starts(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Write a recipe for tea.", "completion": ""}\n' * 2)
    manifest = write_manifest(tmp_path / "job.yaml", name="no-rows", dataset={"path": str(data)})
    result = subprocess.run(
        local_command(manifest, tmp_path / "runs", processes=1),
        env=local_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert "2 read, 2 dropped as 'missing input or output'" in line and f"{data}:1" in line
    assert not (tmp_path / "runs" / "no-rows" / run_layout.OUTPUT_FILE).exists()  # no trainer was launched


def test_the_trainer_checks_the_data_before_deepspeed_starts(tmp_path):
    from recipe_trainer.cli import main

    from .conftest import trainer_config

    data = tmp_path / "header.csv"
    data.write_text("title,ingredients,directions,NER\n")
    config = trainer_config(tmp_path, dataset={"path": str(data)})
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    assert main(["train", "--config", str(tmp_path / "config.yaml")]) == 1
    reason = (tmp_path / run_layout.TERMINATION_FILE).read_text()
    assert reason.startswith("spec.dataset.path:") and "holds no rows" in reason


def test_a_first_cpu_run_says_it_compiles_and_where(tmp_path):
    manifest = write_manifest(tmp_path / "job.yaml", name="first-build")
    extensions = tmp_path / "fresh-cache"
    env = {**local_env(), "TORCH_EXTENSIONS_DIR": str(extensions)}
    command = local_command(manifest, tmp_path / "runs", processes=1)
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first_line = cli.stdout.readline()
    finally:
        cli.kill()  # the launcher dies with it (process_tree); the build is not needed here
        cli.wait()
    assert "DeepSpeed compiles its communication op" in first_line and str(extensions) in first_line
    assert "about a minute" in first_line


def test_a_misspelt_field_stops_local_mode_with_the_closest_name(tmp_path):
    manifest = write_manifest(tmp_path / "job.yaml", name="typo", training={"epoch": 2})
    result = subprocess.run(
        local_command(manifest, tmp_path / "runs", processes=1),
        env=local_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{manifest}: spec.training.epoch: unknown field; did you mean epochs?" in result.stdout


@contextlib.contextmanager
def _marked_run(tmp_path, name: str, until_step: bool):
    """A long local run whose every process carries a unique marker in its environment, once its
    rank process runs (or, `until_step`, once it has trained a step); killed if the test fails."""
    manifest = write_manifest(tmp_path / "job.yaml", name=name, training={"maxSteps": 500})
    marker = uuid.uuid4().hex
    env = {**local_env(), MARKER: marker}
    port = free_port()  # the rendezvous port names the run's DeepSpeed shared memory
    command = [*local_command(manifest, tmp_path / "runs", processes=1), "--master-port", str(port)]
    job_dir = tmp_path / "runs" / name
    with (tmp_path / "cli.out").open("w") as output:
        cli = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + SLOW_START_TIMEOUT

        def ready() -> bool:
            if until_step:
                return any(e["event"] == "step" for e in read_run_log(job_dir))
            commands = [" ".join(p.cmdline()) for p in marked(marker)]
            return any("recipe_trainer.cli train" in c and "deepspeed" not in c for c in commands)  # a rank

        while not ready():
            assert cli.poll() is None and time.monotonic() < deadline, (tmp_path / "cli.out").read_text()
            time.sleep(0.2)
        yield cli, marker, command, env, job_dir, port
    finally:
        cli.kill()
        cli.wait()


def _no_survivor(marker: str) -> None:
    deadline = time.monotonic() + GRACE_S
    while (survivors := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, [" ".join(p.cmdline()) for p in survivors]


def test_a_second_run_is_refused_in_one_line_and_a_killed_cli_leaves_no_process(tmp_path):
    with _marked_run(tmp_path, "owned", until_step=False) as (cli, marker, command, env, job_dir, _):
        names = " | ".join(" ".join(p.cmdline()) for p in marked(marker))
        assert "deepspeed.launcher.runner" in names and "deepspeed.launcher.launch" in names, names
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert second.returncode == 2
        (line,) = [line for line in second.stdout.splitlines() if "in use" in line]
        assert f"(pid {cli.pid})" in line and f"kill {cli.pid}" in line and str(job_dir) in line
        assert "training" not in second.stdout  # refused before anything started

        cli.kill()  # kill -9: no handler of the CLI runs
        cli.wait(TIMEOUT)
        _no_survivor(marker)
        wait_until_free(job_dir)  # the dead run does not keep its directory


def test_a_closed_terminal_checkpoints_and_leaves_no_process(tmp_path):
    with _marked_run(tmp_path, "hangup", until_step=True) as (cli, marker, _, _, job_dir, port):
        # DeepSpeed's 67 MB shared-memory buffer is unnamed once the ranks have started: whatever
        # ends the run (a kill -9 included), /dev/shm keeps nothing of it
        assert not _shared_memory_buffers(port)
        cli.send_signal(signal.SIGHUP)  # what closing the terminal sends
        assert cli.wait(TIMEOUT) == 128 + signal.SIGINT, (tmp_path / "cli.out").read_text()
        assert (
            layout.newest_checkpoint(job_dir / run_layout.CHECKPOINTS_DIR) is not None
        )  # checkpointed first
        _no_survivor(marker)
        assert not _shared_memory_buffers(port)


def _shared_memory_buffers(port: int) -> list[Path]:
    """DeepSpeed shm comm op files of the run whose rendezvous port is `port` (ranks.py)."""
    pattern = shared_memory_name("*", {"MASTER_ADDR": "*", "MASTER_PORT": str(port)})
    return list(pattern.parent.glob(pattern.name))


def test_sigterm_and_sighup_take_the_ctrl_c_path_and_a_hangup_silences_the_console():
    console = Console(file=io.StringIO())
    previous = _stop_signals_interrupt(console)
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with pytest.raises(KeyboardInterrupt):  # what `_follow_with_ctrl_c` turns into "checkpoint, stop"
                os.kill(os.getpid(), signum)
                time.sleep(5)
        assert console.file.name == os.devnull  # the closed terminal is not written to
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_stop_after_the_final_checkpoint_reports_the_finished_run(tmp_path):
    """Ctrl-C between the trainer's success summary and the launcher's exit: the run is done, and
    saying "training failed (exit 254)" with the summary's raw JSON would be wrong."""
    from recipe_api.trainer_config import TerminationSummary
    from recipe_trainer.commands.local import _report

    from .conftest import trainer_config

    config = trainer_config(tmp_path)
    summary = TerminationSummary(step=12, last_checkpoint=str(tmp_path / "checkpoints" / "step-00000012"))
    (tmp_path / run_layout.TERMINATION_FILE).write_text(summary.model_dump_json(by_alias=True))
    output = io.StringIO()
    assert _report(254, tmp_path, config, Console(file=output, width=200)) == 0
    text = output.getvalue()
    assert "had finished when it was stopped (exit 254)" in text and "done; checkpoints in" in text
    assert "failed" not in text and "{" not in text
