"""Nothing that `recipe-train local` starts outlives it, however it ends (SIGKILL, SIGHUP, SIGTERM,
Ctrl-C, a crash).

Why it needs care: the trainer is a tree - DeepSpeed's runner starts `deepspeed.launcher.launch`,
which starts the ranks, which may start data workers - and it runs in its own session, so that
Ctrl-C in the terminal reaches only the CLI (which then asks the ranks to checkpoint; see
`launcher`). A CLI killed with SIGKILL, or a closed terminal, used to leave that whole session
running, and the next run wrote into the same run directory beside the orphans.

How, in three layers:
1. the runner (the CLI's direct child) gets PR_SET_PDEATHSIG = SIGKILL: the kernel kills it the
   moment the CLI dies. That covers the direct child only;
2. a watchdog process (`python -m recipe_trainer.local.process_tree PGID`, in a session of its own so a
   terminal's signals miss it) reads a pipe whose only write end the CLI holds. The kernel closes
   that end however the CLI dies, the read returns end-of-file, and the watchdog SIGKILLs the
   trainer's whole process group (runner, launch, ranks, workers: DeepSpeed never leaves the
   group), waits until the group is empty, then exits. Blocking on a read costs no CPU and
   answers at once, unlike polling a pid (which can also be reused);
3. on a normal end the CLI kills what is left in the group and *disarms* the watchdog (writes one
   byte before closing), so it exits without killing anything.
The watchdog also holds the run directory's lock file (`run_lock`), so the directory stays busy
until the last trainer process is gone, not merely the CLI.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
DISARM = b"x"
EMPTY_GROUP_WAIT_S = 30.0  # how long the watchdog waits for SIGKILLed processes to be gone


LAUNCH_MODULE = "deepspeed.launcher.launch"  # one per node; its children are that node's ranks


def rank_processes(root: Any) -> list:
    """The rank processes below `root` (a psutil.Process): the direct children of each
    `deepspeed.launcher.launch` process. Both places that ask ranks to stop use it: the pod
    supervisor (the kubelet's SIGTERM) and `recipe-train local` (Ctrl-C).

    Why by parent and not by the trainer module on the command line: the runner's and launch.py's
    command lines name the trainer module too, and forked DataLoader workers carry their rank's
    command line; only launch.py's children are ranks."""
    import psutil  # here, not at the top: the watchdog process that imports this module needs none

    ranks: list = []
    for process in root.children(recursive=True):
        try:
            if LAUNCH_MODULE in process.cmdline():
                ranks.extend(process.children())
        except psutil.Error:  # gone meanwhile, or a zombie
            continue
    return ranks


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when its parent dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@contextlib.contextmanager
def guarded_session(
    command: list[str], env: Mapping[str, str], log_path: Path, keep_open: tuple[int, ...] = ()
) -> Iterator[subprocess.Popen]:
    """Start `command` in a new session (output to `log_path`) with the three layers of the
    module docstring; yields its Popen (its pid is the session's process group). On leaving,
    whatever is left in the group is killed and the watchdog disarmed and waited for.
    `keep_open`: file descriptors the watchdog inherits and holds until the group is gone."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    process = watchdog = None
    try:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        watchdog = subprocess.Popen(
            [sys.executable, "-m", __name__, str(process.pid)],
            stdin=read_end,
            pass_fds=keep_open,
            start_new_session=True,
        )
        os.close(read_end)
        read_end = -1
        yield process
    finally:
        if read_end >= 0:
            os.close(read_end)
        if process is not None:
            kill_group(process.pid)
        if watchdog is not None:
            with contextlib.suppress(OSError):
                os.write(write_end, DISARM)
        os.close(write_end)
        if watchdog is not None:
            watchdog.wait()


def kill_group(pgid: int) -> None:
    """SIGKILL every process in the group (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group, from /proc. Why not `killpg(pgid, 0)`: it also
    counts zombies, which linger where nothing reaps orphans (PID 1 of some containers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]  # the name may hold spaces and ")"
        if int(group) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def watch(pgid: int) -> int:
    """The watchdog: block on stdin; end-of-file without the disarm byte means the CLI died, so
    kill the group and wait (at most EMPTY_GROUP_WAIT_S) until it is empty."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # only the pipe decides
    try:
        data = os.read(0, 1)
    except OSError:
        data = b""
    if data == DISARM:
        return 0
    kill_group(pgid)
    deadline = time.monotonic() + EMPTY_GROUP_WAIT_S
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1])))
