"""The local progress bar: follows the run log (`run_log`) that rank 0 appends to while the
launcher runs, so the ranks print nothing to the terminal and the bar works the same for one
rank or eight.
"""

from __future__ import annotations

import subprocess
import time
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

from ..run_log import RunLogFollower

POLL_SECONDS = 0.5


class StepBar:
    """Optimizer steps done out of planned, across `follow` calls: after Ctrl-C, local mode asks
    the ranks to stop and follows again, and the new bar continues where the first one was."""

    def __init__(self, follower: RunLogFollower):
        self.follower = follower
        self.total: int | None = None  # planned steps, once the run has said
        self.completed = 0

    def follow(self, launcher: subprocess.Popen, console: Console) -> int:
        """Show progress until the launcher exits; returns its exit code. KeyboardInterrupt passes
        through to the caller."""
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
            task = bar.add_task("train", total=self.total, completed=self.completed, loss="-", tokens="-")
            while True:
                code = launcher.poll()
                for event in self.follower.new_events():
                    self._count(event)
                    _show(event, bar, task, console)
                if code is not None:
                    return code
                time.sleep(POLL_SECONDS)

    def _count(self, event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            self.total = event["total_steps"]
        if event.get("event") in ("start", "step"):
            self.completed = event.get("step", event.get("resumed_from_step")) or 0


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
