"""The local progress bar: follows the run log (`run_log`) that rank 0 appends to while the
launcher runs, so the ranks print nothing to the terminal and the bar works the same for one
rank or eight.

When the output is no terminal (CI logs, `nohup`, a pipe) a bar cannot redraw, and rich would print
it only at the next validation or checkpoint line; then progress is one plain line per
`$RECIPE_TRAINER_PROGRESS_SECONDS` (default 30) instead: step, loss, tokens/s and ETA.
"""

from __future__ import annotations

import os
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
PLAIN_EVERY_ENV = "RECIPE_TRAINER_PROGRESS_SECONDS"
PLAIN_EVERY_SECONDS = 30.0


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
        if not console.is_terminal:
            return self._follow_plain(launcher, console)
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

    def _follow_plain(self, launcher: subprocess.Popen, console: Console) -> int:
        """`follow` for output that is no terminal: plain lines, one per interval, and the events."""
        every = float(os.environ.get(PLAIN_EVERY_ENV) or PLAIN_EVERY_SECONDS)
        rate = _StepRate()
        last_line, latest = float("-inf"), None
        while True:
            code = launcher.poll()
            for event in self.follower.new_events():
                self._count(event)
                kind = event.get("event")
                if kind == "step":
                    latest = event
                    rate.add(event["step"])
                else:
                    _show(event, None, None, console)
            now = time.monotonic()
            if latest is not None and (now - last_line >= every or code is not None):
                console.print(
                    _plain_line(latest, self.total, rate.eta(self.total)), markup=False, highlight=False
                )
                last_line, latest = now, None
            if code is not None:
                return code
            time.sleep(POLL_SECONDS if every > POLL_SECONDS else 0.05)

    def _count(self, event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            self.total = event["total_steps"]
        if event.get("event") in ("start", "step"):
            self.completed = event.get("step", event.get("resumed_from_step")) or 0


class _StepRate:
    """Steps per second since the first step seen in this command (a resumed run's earlier steps
    took their time in another one), for the ETA of plain lines."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def add(self, step: int) -> None:
        point = (time.monotonic(), step)
        self.first = self.first or point
        self.last = point

    def eta(self, total: int | None) -> float | None:
        if total is None or self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return None
        per_step = (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])
        return max(0, total - self.last[1]) * per_step


def _plain_line(event: dict[str, Any], total: int | None, eta: float | None) -> str:
    loss = "skipped" if event.get("loss") is None else f"{event['loss']:.4f}"
    rate = event.get("tokens_per_second")
    left = "-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
    return (
        f"step {event['step']}/{total if total is not None else '?'}  loss {loss}  "
        f"{f'{rate:,.0f}' if rate else '-'} tok/s  ETA {left}"
    )


def _show(event: dict[str, Any], bar: Progress | None, task: Any, console: Console) -> None:
    """An event on the console, and on the bar when there is one (steps and the end only move it)."""
    kind = event.get("event")
    if kind == "start" and event.get("resumed_from_step"):
        console.print(f"resumed from step {event['resumed_from_step']}")
    elif kind == "validation":
        quality = event.get("quality")
        console.print(
            f"step {event['step']}: validation loss {event['validation_loss']:.4f}, "
            f"perplexity {event['perplexity']:.1f}"
            + (f", quality {quality:.3f}" if quality is not None else "")
        )
    elif kind == "checkpoint":
        console.print(f"step {event['step']}: checkpoint {event['path']}", style="dim")
    if bar is None:
        return
    if kind == "start":
        bar.update(task, total=event["total_steps"], completed=event.get("resumed_from_step") or 0)
    elif kind == "step":
        loss = "skipped" if event.get("loss") is None else f"{event['loss']:.4f}"
        rate = event.get("tokens_per_second")
        bar.update(task, completed=event["step"], loss=loss, tokens=f"{rate:,.0f}" if rate else "-")
    elif kind == "end":  # the data may run out before the planned (estimated) step count
        bar.update(task, total=event["step"], completed=event["step"])
