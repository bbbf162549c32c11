"""Local mode's progress where the output is no terminal (CI logs, nohup, a pipe): plain lines with
step, loss, tokens/s and ETA, not a bar that only redraws at validation or checkpoint lines."""

from __future__ import annotations

import io
import subprocess
import sys

from recipe_trainer.local.progress_bar import PLAIN_EVERY_ENV, StepBar
from recipe_trainer.run_log import RunLogFollower
from rich.console import Console

# a "trainer" that writes the run log as rank 0 does, then exits
WRITER = """
import sys
from recipe_trainer.run_log import RunLogWriter
log = RunLogWriter(sys.argv[1])
log.write("start", total_steps=3, resumed_from_step=0)
for step in (1, 2, 3):
    log.write("step", step=step, loss=2.0 / step, tokens_per_second=1234.0)
log.write("validation", step=3, validation_loss=0.75, perplexity=2.1, quality=0.5)
log.write("checkpoint", step=3, path="/runs/x/checkpoints/step-00000003")
log.write("end", step=3)
"""


def _follow(tmp_path, monkeypatch, every: str | None) -> list[str]:
    if every is not None:
        monkeypatch.setenv(PLAIN_EVERY_ENV, every)
    bar = StepBar(RunLogFollower(tmp_path))
    output = io.StringIO()
    trainer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    assert bar.follow(trainer, Console(file=output, width=80)) == 0  # a StringIO is no terminal
    return output.getvalue().splitlines()


def test_output_that_is_no_terminal_gets_plain_progress_lines(tmp_path, monkeypatch):
    lines = _follow(tmp_path, monkeypatch, every="0")
    steps = [line for line in lines if line.startswith("step ") and "tok/s" in line]
    assert steps, lines
    assert steps[-1].startswith("step 3/3  loss 0.6667  1,234 tok/s  ETA ")
    assert "step 3: validation loss 0.7500, perplexity 2.1, quality 0.500" in lines
    assert "step 3: checkpoint /runs/x/checkpoints/step-00000003" in lines
    assert not any("\x1b" in line or "━" in line for line in lines)  # no escape codes, no bar


def test_plain_lines_come_once_per_interval_and_the_last_step_always_shows(tmp_path, monkeypatch):
    lines = _follow(tmp_path, monkeypatch, every=None)  # the default interval, longer than this run
    steps = [line for line in lines if "tok/s" in line]
    assert 1 <= len(steps) <= 2  # the first step seen at once, then the last one at the end
    assert steps[-1].startswith("step 3/3")
