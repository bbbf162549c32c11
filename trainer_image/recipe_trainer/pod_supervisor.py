"""PID 1 of a trainer pod: run the DeepSpeed launcher, and turn the kubelet's SIGTERM into a
stop checkpoint.

Why it exists: when Kubernetes preempts, evicts or deletes a pod, the kubelet sends SIGTERM to the
container's PID 1 only, then SIGKILL after the grace period. DeepSpeed's runner
(`deepspeed.launcher.runner`, the `deepspeed` script) installs no SIGTERM handler outside its pdsh
path, and PID 1 ignores signals it does not handle, so nothing reached the ranks: their handlers
(`training.recipe`: stop together at the end of the step, checkpoint, exit 128+N) never ran and
every preemption lost the work since the last periodic checkpoint. Forwarding to
`deepspeed.launcher.launch` would not do either: it answers SIGTERM by SIGTERMing the ranks and
SIGKILLing them 30 s later, too short for a real step plus checkpoint.

What it does (`python -m recipe_trainer.pod_supervisor LAUNCHER-ARGS`, the operator's container
command; the arguments are those of the `deepspeed` launcher):
1. starts the launcher with this interpreter (`python -m deepspeed.launcher.runner ARGS`) in a
   process group of its own, so a terminal's Ctrl-C reaches only this process and not the launcher;
2. on the first SIGTERM or SIGINT, sends that signal to the rank processes (`rank_processes`),
   and to ranks that start later, never to the launcher: the ranks agree on the step to stop at,
   write their checkpoint and exit 128+N, which launch.py and the runner pass up unchanged. A
   rank still starting (no handler yet) dies of the signal: it has no step to save, and launch.py
   then exits 241 (its `sys.exit(-15)`), which the operator also retries;
3. on a second signal (a user who insists), or on SIGHUP (its terminal is gone, and nobody is
   left to wait for a checkpoint), SIGKILLs everything below it at once;
4. reaps every process that ends below it (as PID 1, or as a child subreaper elsewhere, orphans
   are reparented here; unreaped they would pile up as zombies), and when the launcher exits,
   SIGKILLs whatever of its tree is left and exits with the launcher's exit code (128+N when a
   signal killed it, as a shell reports it).

What it cannot do: clean up after a SIGKILL of itself. In a pod the kernel then kills the whole
PID namespace (PID 1 died); elsewhere only the runner gets a parent-death signal
(`die_with_parent`), so on a workstation use `recipe-train local`, which guards its whole tree.
The kubelet's grace period, not this process, bounds how long the ranks have to checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil

from .local.process_tree import die_with_parent, rank_processes

LAUNCHER_MODULE = "deepspeed.launcher.runner"  # what the `deepspeed` script runs
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
KILLING_SIGNALS = (signal.SIGHUP,)
POLL_S = 0.2  # how often the loop reaps and looks for ranks that have not heard the stop yet
PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_WAIT_S = 10.0  # how long SIGKILLed leftovers may take to be gone before we exit anyway


def launcher_command(launcher_args: list[str]) -> list[str]:
    """The launcher, run by this interpreter: the same environment that can import the trainer."""
    return [sys.executable, "-m", LAUNCHER_MODULE, *launcher_args]


def exit_code_of(wait_status: int) -> int:
    """A waitpid status as a shell reports it: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def become_subreaper() -> None:
    """Orphans below us are reparented here instead of to init, so we can reap and kill them."""
    if os.getpid() == 1:
        return  # PID 1 of a namespace is its reaper already
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def log(message: str) -> None:
    print(f"pod-supervisor: {message}", file=sys.stderr, flush=True)


class Supervisor:
    """One run of the launcher under the rules of the module docstring."""

    def __init__(self, command: list[str]):
        self.command = command
        self.received: list[int] = []  # signals in the order they came; handlers only append
        self.told: set[int] = set()  # pids of ranks already sent the stop
        self.killed = False
        self.me = psutil.Process()

    def run(self) -> int:
        for signum in FORWARDED_SIGNALS + KILLING_SIGNALS:
            signal.signal(signum, lambda signum, _frame: self.received.append(signum))
        become_subreaper()
        child = subprocess.Popen(self.command, process_group=0, preexec_fn=die_with_parent)
        code = None
        while code is None:
            code = self._reap(child.pid)
            if code is None:
                self._answer_signals()
                time.sleep(POLL_S)
        child.returncode = code  # reaped by us, not by Popen
        self._kill_leftovers()
        return code

    def _reap(self, child_pid: int) -> int | None:
        """Reap every ended process below us; the launcher's exit code once it has ended."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid == child_pid:
                return exit_code_of(status)

    def _answer_signals(self) -> None:
        """Pass the first stop request to each rank once, including ranks that start after it
        came; a second signal, or SIGHUP, kills everything instead. Runs in the loop, not in the
        handlers, so no process work happens inside a signal handler."""
        if not self.received or self.killed:
            return
        if len(self.received) > 1 or self.received[0] in KILLING_SIGNALS:
            log(f"{signal.Signals(self.received[-1]).name}: killing the launcher and the ranks now")
            self.killed = True
            self._kill_descendants()
            return
        signum = self.received[0]
        for rank in rank_processes(self.me):
            if rank.pid in self.told:
                continue
            with contextlib.suppress(psutil.Error):
                rank.send_signal(signum)
                self.told.add(rank.pid)
                log(f"{signal.Signals(signum).name}: asked rank pid {rank.pid} to checkpoint and stop")

    def _kill_descendants(self) -> list[psutil.Process]:
        left = self.me.children(recursive=True)
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        return left

    def _kill_leftovers(self) -> None:
        """Nothing we started outlives us: SIGKILL and reap what the launcher left behind."""
        deadline = time.monotonic() + LEFTOVER_WAIT_S
        while self._kill_descendants() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    return Supervisor(launcher_command(sys.argv[1:] if argv is None else argv)).run()


if __name__ == "__main__":
    sys.exit(main())
