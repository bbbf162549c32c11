"""Nothing outlives the command that started it, and one run owns a run directory: the mechanism
on a stand-in tree of three generations (each started with close_fds, as DeepSpeed's runner and
launcher start theirs), fast. The real `recipe-train local` tree is checked in test_local.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest
from recipe_trainer.local.run_lock import RunDirectoryInUse, RunDirectoryLock

MARKER = "RECIPE_TRAIN_TEST_MARKER"
GRACE_S = 5.0

# A "CLI" that holds the run directory and runs runner -> launch -> rank (sleepers) under the guard.
CLI = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from pathlib import Path
    from recipe_trainer.local.process_tree import guarded_session
    from recipe_trainer.local.run_lock import RunDirectoryLock

    rank = "import time; time.sleep(300)"
    launch = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {rank!r}]); time.sleep(300)"
    runner = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {launch!r}]); time.sleep(300)"
    run_dir = Path(sys.argv[1])
    with RunDirectoryLock(run_dir) as lock:
        with guarded_session([sys.executable, "-c", runner], os.environ, run_dir / "log", (lock.fd,)):
            print("started", flush=True)
            time.sleep(float(sys.argv[2]))
    """
)


def marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries the marker (zombies are gone already)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(MARKER) == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def start_cli(tmp_path, seconds: float = 300):
    marker = uuid.uuid4().hex
    cli = subprocess.Popen(
        [sys.executable, "-c", CLI, str(tmp_path), str(seconds)],
        env={**os.environ, MARKER: marker},
        stdout=subprocess.PIPE,
        text=True,
        # a terminal's CLI dies of SIGHUP; under nohup (an ignored SIGHUP is inherited) it would not
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    assert cli.stdout.readline().strip() == "started"
    # CLI, watchdog, runner, launch, rank
    wait_for(lambda: len(marked(marker)) >= 5, 30, "the tree of five processes")
    return cli, marker


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_the_whole_tree_dies_with_the_cli_and_frees_the_run_directory(tmp_path, signum):
    cli, marker = start_cli(tmp_path)
    with pytest.raises(RunDirectoryInUse) as busy:
        RunDirectoryLock(tmp_path).acquire()
    assert busy.value.pid == str(cli.pid) and f"kill {cli.pid}" in str(busy.value)
    cli.send_signal(signum)
    cli.wait(GRACE_S)
    survivors = []
    deadline = time.monotonic() + GRACE_S
    while (survivors := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, [" ".join(p.cmdline()) for p in survivors]
    wait_until_free(tmp_path)  # a dead holder does not keep the directory


def wait_until_free(run_dir, timeout: float = GRACE_S) -> None:
    """Take and release the run directory's lock, waiting up to `timeout` for it. Why wait at all:
    an exiting process drops out of the process list (its environment can no longer be read) a
    moment before the kernel closes its files, and with them the lock; on a loaded machine that
    moment is long enough to be seen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with RunDirectoryLock(run_dir):
                return
        except RunDirectoryInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_normal_end_kills_leftovers_and_releases_the_lock_when_the_command_returns(tmp_path):
    cli, marker = start_cli(tmp_path, seconds=1)
    assert cli.wait(30) == 0
    assert marked(marker) == []  # the guard waited for its watchdog; the sleepers were killed
    with RunDirectoryLock(tmp_path):
        pass


def test_the_lock_names_its_holder_and_refuses_any_second_holder(tmp_path):
    lock = RunDirectoryLock(tmp_path).acquire()
    with lock:  # entering an acquired lock keeps it (what local mode does) and releases it on exit
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(
            RunDirectoryInUse, match=f"in use by another recipe-train local .pid {os.getpid()}"
        ):
            RunDirectoryLock(tmp_path).acquire()  # even from the same process: flock is per open file
    RunDirectoryLock(tmp_path).acquire().release()
