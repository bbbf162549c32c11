"""The pod supervisor (a trainer pod's PID 1) against the real DeepSpeed launcher on CPU.

A SIGTERM to the supervisor, as the kubelet sends on preemption, reaches the ranks (not
launch.py, which would SIGKILL them 30 s later): they stop together, write a checkpoint of the step
they reached and exit 143, which the supervisor passes on. It ends when the launcher ends, with the
launcher's exit code (128+N for a signal), and nothing it started outlives it. The same in a real
pod's PID namespace: tests/gang/test_gang.py (preemption).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest
from recipe_api.contract import POD_SUPERVISOR_MODULE, TRAINER_MODULE, checkpoint_step_dir
from recipe_trainer import run_layout
from recipe_trainer.run_log import read_run_log, step_losses

from .conftest import cpu_deepspeed_env, free_port, trainer_config
from .test_process_tree import MARKER, marked

TIMEOUT = 300


def supervisor(launcher_args: list[str], marker: str, log: Path) -> subprocess.Popen:
    """The container command the operator builds (`builders.build_launch`), with every
    process below it marked through the environment so survivors can be found."""
    env = {**os.environ, **cpu_deepspeed_env(), MARKER: marker}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", POD_SUPERVISOR_MODULE, *launcher_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def launch_args(processes: int, *user_command: str) -> list[str]:
    return ["--num_gpus", str(processes), "--master_port", str(free_port()), "--no_local_rank", *user_command]


# A rank that leaves an orphan behind (in a session of its own, like a daemon), says it is ready,
# then sleeps until it is told to exit with a given code; SIGTERM/SIGINT do not stop it (a step
# that takes longer than the user wants to wait).
RANK_SCRIPT = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    from pathlib import Path
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    ready = Path(sys.argv[1])
    ready.write_text("ready")
    while ready.read_text() == "ready":
        time.sleep(0.1)
    sys.exit(int(ready.read_text()))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["rank exits 3", "launcher SIGKILLed", "SIGTERM twice", "SIGHUP"])
def test_the_supervisor_ends_with_its_launcher_and_leaves_nothing_behind(tmp_path, ending):
    script, ready = tmp_path / "rank.py", tmp_path / "ready"
    script.write_text(RANK_SCRIPT)
    marker = uuid.uuid4().hex
    process = supervisor(launch_args(1, str(script), str(ready)), marker, tmp_path / "out")
    try:
        wait_for(ready.exists, "the rank to start")
        wait_for(lambda: len(marked(marker)) >= 5, "supervisor, runner, launch, rank and its orphan")
        if ending == "rank exits 3":
            ready.write_text("3")
            expected = 3  # launch.py and the runner pass the rank's code up
        elif ending == "launcher SIGKILLed":
            (launcher,) = psutil.Process(process.pid).children()
            launcher.kill()
            expected = 128 + signal.SIGKILL
        elif ending == "SIGTERM twice":
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: "asked rank pid" in (tmp_path / "out").read_text(), "the rank to be told")
            process.send_signal(signal.SIGTERM)  # the rank ignored the first: kill it all now
            expected = 128 + signal.SIGKILL  # the launcher's own death
        else:
            process.send_signal(signal.SIGHUP)  # a closed terminal: nobody waits for a checkpoint
            expected = 128 + signal.SIGKILL
        code = process.wait(60)
        output = (tmp_path / "out").read_text()
        assert code == expected, output
        assert output.count("asked rank pid") == (1 if ending == "SIGTERM twice" else 0), output
        assert marked(marker) == [], output  # launch.py, the rank and the rank's orphan included
    finally:
        for left in [process, *marked(marker)]:
            left.kill()


@pytest.mark.slow
def test_sigterm_makes_every_rank_checkpoint_the_step_reached_and_exit_143(tmp_path):
    """Two ranks train a tiny model with no periodic checkpoint; SIGTERM after step 2."""
    config = trainer_config(
        tmp_path,
        training={"epochs": 50, "maxSteps": 2000},
        checkpoint={"everySteps": 100000, "keepLast": 2},
    )
    config_path = tmp_path / "trainer-config.yaml"
    config_path.write_text(config.to_yaml())
    marker = uuid.uuid4().hex
    args = launch_args(2, "--module", TRAINER_MODULE, "train", "--config", str(config_path))
    process = supervisor(args, marker, tmp_path / "out")
    try:
        wait_for(
            lambda: len(step_losses(read_run_log(tmp_path))) >= 2 or process.poll() is not None, "step 2"
        )
        assert process.poll() is None, (tmp_path / "out").read_text()
        process.send_signal(signal.SIGTERM)  # to the supervisor only, as the kubelet signals PID 1
        code = process.wait(TIMEOUT)
        output = (tmp_path / "out").read_text()
        assert code == 128 + signal.SIGTERM, output
        assert marked(marker) == [], output
    finally:
        for left in [process, *marked(marker)]:
            left.kill()
    events = read_run_log(tmp_path)
    reached = max(step_losses(events))
    print(f"\nSIGTERM after step 2: the ranks stopped at step {reached}, exit code {code}")
    assert 2 <= reached < 2000
    checkpoints = sorted(p.name for p in (tmp_path / run_layout.CHECKPOINTS_DIR).glob("step-*"))
    assert checkpoints == [checkpoint_step_dir(reached)], output  # the stop checkpoint, nothing else
    assert output.count("asked rank pid") == 2, output  # both ranks, each once
    assert "Main process received SIGTERM" not in output  # launch.py was never signalled
    termination = (tmp_path / run_layout.TERMINATION_FILE).read_text()
    assert termination.startswith("Interrupted:"), termination
