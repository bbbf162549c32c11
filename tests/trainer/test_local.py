"""`recipe-train local` as a newcomer uses it: a progress bar, Ctrl-C that checkpoints and stops,
the same command resuming and saying so, and at the end the curves and a generated recipe."""

from __future__ import annotations

import signal
import subprocess
import time

from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.recipe import read_train_log

from .conftest import local_command, local_env, write_manifest

TIMEOUT = 300


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

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not any(e["event"] == "step" for e in read_train_log(job_dir)):
        assert first.poll() is None and time.monotonic() < deadline, "no training step before the deadline"
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
    output, _ = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 128 + signal.SIGINT, output
    assert "run the same command again to resume" in output
    stopped_at = layout.newest_checkpoint(job_dir / "checkpoints")
    assert stopped_at is not None, output
    stopped_step = int(stopped_at.name.removeprefix("step-"))
    assert 0 < stopped_step < 12

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stdout[-3000:]
    assert f"resumed from step {stopped_step}" in second.stdout
    assert "12/12" in second.stdout  # the progress bar reached the end
    assert (job_dir / "curves.png").stat().st_size > 0
    assert str(job_dir / "curves.png") in second.stdout.replace("\n", "")
    assert "a recipe from the trained model" in second.stdout
    assert "quality score:" in second.stdout
    steps = {e["step"] for e in read_train_log(job_dir) if e["event"] == "step"}
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
    assert not (tmp_path / "runs" / "no-data" / "train.log").exists()  # no trainer was launched
