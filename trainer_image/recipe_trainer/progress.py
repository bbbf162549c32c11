"""The local progress bar: follows the events rank 0 appends to `train_log.jsonl` while the
launcher runs, so the ranks print nothing to the terminal and the bar works the same for one
rank or eight.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

POLL_SECONDS = 0.5


class LogFollower:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = path.stat().st_size if path.is_file() else 0  # only this run's events
        self._partial = ""
        self.total: int | None = None  # planned steps, once the run has said
        self.completed = 0

    def new_events(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open() as handle:
            handle.seek(self._offset)
            text = handle.read()
            self._offset = handle.tell()
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        for event in events:
            if event.get("event") == "start":
                self.total = event["total_steps"]
            if event.get("event") in ("start", "step"):
                self.completed = event.get("step", event.get("resumed_from_step")) or 0
        return events


def follow(launcher: subprocess.Popen, follower: LogFollower, console: Console) -> int:
    """Show progress until the launcher exits; returns its exit code. KeyboardInterrupt passes
    through to the caller (which asks the ranks to stop and calls `follow` again, with the same
    follower, so the bar continues where it was)."""
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tokens]} tok/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=follower.total, completed=follower.completed, loss="-", tokens="-")
        while True:
            code = launcher.poll()
            for event in follower.new_events():
                _show(event, bar, task, console)
            if code is not None:
                return code
            time.sleep(POLL_SECONDS)


def _show(event: dict[str, Any], bar: Progress, task: Any, console: Console) -> None:
    kind = event.get("event")
    if kind == "start":
        resumed = event.get("resumed_from_step")
        if resumed:
            console.print(f"resumed from step {resumed}")
        bar.update(task, total=event["total_steps"], completed=resumed or 0)
    elif kind == "step":
        loss = "skipped" if event.get("loss") is None else f"{event['loss']:.4f}"
        rate = event.get("tokens_per_second")
        bar.update(task, completed=event["step"], loss=loss, tokens=f"{rate:,.0f}" if rate else "-")
    elif kind == "validation":
        quality = event.get("quality")
        console.print(
            f"step {event['step']}: validation loss {event['validation_loss']:.4f}, "
            f"perplexity {event['perplexity']:.1f}"
            + (f", quality {quality:.3f}" if quality is not None else "")
        )
    elif kind == "end":  # the data may run out before the planned (estimated) step count
        bar.update(task, total=event["step"], completed=event["step"])
    elif kind == "checkpoint":
        console.print(f"step {event['step']}: checkpoint {event['path']}", style="dim")
