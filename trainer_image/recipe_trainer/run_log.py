"""The run log, `<run_dir>/train_log.jsonl`: one JSON object a line, appended by rank 0 as the
run goes (`start`, `step`, `validation`, `checkpoint`, `end`), each with `event` and `time`.

Why a file rather than the terminal: the local progress bar, the curves, the resume and gang
tests and the benchmarks all read the same events, while the ranks print nothing, so one rank or
eight look the same. Writer and readers live here together so that the format has one home.

A run that resumes appends to the same log: a step run twice (before a crash and after the resume)
appears twice, and readers take the later line (`step_losses`). A line cut short by a crash is
skipped, never an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .run_layout import RUN_LOG_FILE


def run_log_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RUN_LOG_FILE


class RunLogWriter:
    """Appends events; opens the file per event, so a crash loses at most the line being written."""

    def __init__(self, run_dir: str | Path):
        self.path = run_log_path(run_dir)

    def write(self, kind: str, **fields: Any) -> None:
        record = {"event": kind, "time": time.time(), **fields}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_run_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every event written so far (none when there is no log yet)."""
    path = run_log_path(run_dir)
    return _parse(path.read_text().splitlines()) if path.is_file() else []


class RunLogFollower:
    """Reads the events appended since the last call, while the run is still writing: only this
    run's events (it starts at the end of an existing log) and only complete lines (a line being
    written waits for the next call)."""

    def __init__(self, run_dir: str | Path):
        self.path = run_log_path(run_dir)
        self._offset = self.path.stat().st_size if self.path.is_file() else 0
        self._partial = ""

    def new_events(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open() as handle:
            handle.seek(self._offset)
            text = handle.read()
            self._offset = handle.tell()
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        return _parse(lines)


def step_losses(events: list[dict[str, Any]]) -> dict[int, float | None]:
    """Loss per step; for steps run twice (before a crash and after resuming) the last one counts."""
    return {e["step"]: e["loss"] for e in events if e["event"] == "step"}


def _parse(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The events of these lines; a torn line (a crash mid-write) is skipped."""
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
