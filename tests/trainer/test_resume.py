"""Exact resumption: a real 2-process DeepSpeed run on CPU, stopped mid-epoch and started again,
trains exactly as an uninterrupted run does: the same loss at every step (fp32, within 1e-6),
dropout, gradient noise, data order and optimizer state included. Stopped three ways: SIGKILL
after a periodic checkpoint (a lost node), and SIGTERM (preemption, a pod deleted) or Ctrl-C,
which resume from the stop checkpoint the run writes on its way out (no periodic one exists)."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer import run_layout
from recipe_trainer.run_log import read_run_log, step_losses

from .conftest import kill_tree, local_command, local_env, write_manifest

STEPS, CHECKPOINT_EVERY, KILL_AT_STEP = 8, 3, 5
STOP_AT_STEP, NO_PERIODIC = 4, 1000
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


def train_until_stopped(command, env, job_dir, stop_at_step: int, signum: int) -> int | None:
    """Run until the log shows `stop_at_step`, then SIGKILL the whole tree or send `signum` to
    the command (as a terminal or a kubelet does) and wait for it; its exit code, None if killed."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if any(e["event"] == "step" and e["step"] >= stop_at_step for e in read_run_log(job_dir)):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the run ended or stalled before step {stop_at_step} (exit {process.poll()})")
        if signum == signal.SIGKILL:
            return None
        process.send_signal(signum)
        return process.wait(RUN_TIMEOUT)
    finally:
        kill_tree(process.pid)
        process.wait()


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[int, float]:
    """The run log of the uninterrupted run."""
    root = tmp_path_factory.mktemp("straight")
    manifest = write_manifest(root / "job.yaml", name="resume", **spec_overrides())
    done = train(local_command(manifest, root / "runs", processes=2), local_env())
    assert done.returncode == 0, done.stdout[-3000:]
    return read_run_log(root / "runs" / "resume")


# how the run is stopped: (signal, step to stop at, checkpoint.everySteps, exit code of the command)
STOPS = {
    "sigkill-after-periodic-checkpoint": (signal.SIGKILL, KILL_AT_STEP, CHECKPOINT_EVERY, None),
    "sigterm-stop-checkpoint": (signal.SIGTERM, STOP_AT_STEP, NO_PERIODIC, 128 + signal.SIGINT),
    "ctrl-c-stop-checkpoint": (signal.SIGINT, STOP_AT_STEP, NO_PERIODIC, 128 + signal.SIGINT),
}


@pytest.mark.parametrize("stop", STOPS)
def test_a_stopped_and_resumed_run_repeats_the_uninterrupted_losses(tmp_path, straight, stop):
    signum, stop_at, every, exit_code = STOPS[stop]
    overrides = spec_overrides()
    overrides["checkpoint"] = {**overrides["checkpoint"], "everySteps": every}
    manifest = write_manifest(tmp_path / "job.yaml", name="resume", **overrides)
    env = local_env()
    interrupted_dir = tmp_path / "interrupted"
    command = local_command(manifest, interrupted_dir, processes=2)
    assert train_until_stopped(command, env, interrupted_dir / "resume", stop_at, signum) == exit_code
    reached = max(step_losses(read_run_log(interrupted_dir / "resume")))
    newest = layout.newest_checkpoint(interrupted_dir / "resume" / run_layout.CHECKPOINTS_DIR)
    saved = int(newest.name.removeprefix("step-"))
    assert 0 < saved < STEPS
    if signum != signal.SIGKILL:
        assert saved == reached  # the stop checkpoint: the step reached, no periodic one to fall back on
    resumed = train(command, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f"resumed from step {saved}" in resumed.stdout  # the newest complete checkpoint

    expected = step_losses(straight)
    actual = step_losses(read_run_log(interrupted_dir / "resume"))
    assert sorted(expected) == sorted(actual) == list(range(1, STEPS + 1))
    for step in expected:
        assert actual[step] == pytest.approx(expected[step], abs=1e-6), f"step {step}"
    validation = [
        [e["validation_loss"] for e in events if e["event"] == "validation"][-2:]
        for events in (straight, read_run_log(interrupted_dir / "resume"))
    ]
    assert validation[0] == pytest.approx(validation[1], abs=1e-6)
