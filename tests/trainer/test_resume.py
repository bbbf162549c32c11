"""Exact resumption: a real 2-process DeepSpeed run on CPU, killed with SIGKILL mid-epoch after a
checkpoint and started again, trains exactly as an uninterrupted run does: the same loss at every
step (fp32, within 1e-6), dropout, gradient noise, data order and optimizer state included."""

from __future__ import annotations

import subprocess
import time

import pytest
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer import run_layout
from recipe_trainer.run_log import read_run_log, step_losses

from .conftest import kill_tree, local_command, local_env, write_manifest

STEPS, CHECKPOINT_EVERY, KILL_AT_STEP = 8, 3, 5
RUN_TIMEOUT = 300


def spec_overrides() -> dict:
    return {
        "model": {"config": {"model_type": "t5", "vocab_size": 600, "d_model": 64, "d_ff": 128, "d_kv": 16,
                             "num_heads": 4, "num_layers": 2, "num_decoder_layers": 2, "dropout_rate": 0.1}},
        "training": {"maxSteps": STEPS, "labelSmoothing": 0.1, "gradientNoise": {"enabled": True, "eta": 0.01}},
        "lora": {"dropout": 0.1},
        "augmentation": {"probability": 0.3},
        "curriculum": {"enabled": True},
        "checkpoint": {"everySteps": CHECKPOINT_EVERY, "keepLast": 2},
        "validation": {"everySteps": 4, "maxBatches": 2, "samples": 0},
    }  # fmt: skip


def train(command, env, timeout=RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def train_until_killed(command, env, job_dir, kill_at_step: int) -> None:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if any(e["event"] == "step" and e["step"] >= kill_at_step for e in read_run_log(job_dir)):
                return
            time.sleep(0.2)
        pytest.fail(f"the run ended or stalled before step {kill_at_step} (exit {process.poll()})")
    finally:
        kill_tree(process.pid)
        process.wait()


def test_killed_and_resumed_run_repeats_the_uninterrupted_losses(tmp_path):
    manifest = write_manifest(tmp_path / "job.yaml", name="resume", **spec_overrides())
    env = local_env()

    straight = train(local_command(manifest, tmp_path / "straight", processes=2), env)
    assert straight.returncode == 0, straight.stdout[-3000:]

    interrupted_dir = tmp_path / "interrupted"
    command = local_command(manifest, interrupted_dir, processes=2)
    train_until_killed(command, env, interrupted_dir / "resume", KILL_AT_STEP)
    newest = layout.newest_checkpoint(interrupted_dir / "resume" / run_layout.CHECKPOINTS_DIR)
    saved = int(newest.name.removeprefix("step-"))
    assert 0 < saved < STEPS
    resumed = train(command, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f"resumed from step {saved}" in resumed.stdout  # the newest complete checkpoint

    expected = step_losses(read_run_log(tmp_path / "straight" / "resume"))
    actual = step_losses(read_run_log(interrupted_dir / "resume"))
    assert sorted(expected) == sorted(actual) == list(range(1, STEPS + 1))
    for step in expected:
        assert actual[step] == pytest.approx(expected[step], abs=1e-6), f"step {step}"
    validation = [
        [e["validation_loss"] for e in read_run_log(d / "resume") if e["event"] == "validation"][-2:]
        for d in (tmp_path / "straight", interrupted_dir)
    ]
    assert validation[0] == pytest.approx(validation[1], abs=1e-6)
