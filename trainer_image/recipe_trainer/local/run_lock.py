"""One run at a time per run directory (`runs/<name>/`), for `recipe-train local`.

Why: two trainers writing checkpoints, `train_log.jsonl` and the trainer config of one run
directory at once corrupt each other's resume point. A second `recipe-train local` on a busy run
directory therefore stops at once with one line naming the holder's pid and how to stop it.

How: `fcntl.flock` on `runs/<name>/.lock`, which holds the holder's pid for that message. The
kernel drops the lock when the last process holding the open file is gone, however it died
(SIGKILL included), so a dead holder never keeps the directory; the file itself stays, its pid
stale but harmless. `recipe-train local` hands the open file to its watchdog
(`recipe_trainer.local.process_tree`), so the lock lasts until the last trainer process is gone.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = ".lock"


class RunDirectoryInUse(RuntimeError):
    """Another run holds the directory; the message is the one line to show."""

    def __init__(self, run_dir: Path, pid: str):
        self.run_dir, self.pid = run_dir, pid
        if pid:
            how = f"stop it with Ctrl-C in its terminal or `kill {pid}`"
        else:
            how = "it is starting; stop it with Ctrl-C in its terminal"
        super().__init__(
            f"{run_dir} is in use by another recipe-train local (pid {pid or 'unknown'}): "
            f"wait for it to finish, {how} (it checkpoints first), or choose another --run-dir"
        )


class RunDirectoryLock:
    """`with RunDirectoryLock(run_dir) as lock:` holds the directory or raises RunDirectoryInUse.
    `lock.fd` is the open lock file, for a child that must keep holding it (pass_fds)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunDirectoryLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunDirectoryInUse(self.run_dir, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Close this process's handle (the lock goes once no other process holds the file)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunDirectoryLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
