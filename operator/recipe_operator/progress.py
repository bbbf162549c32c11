"""Rank 0's Prometheus exposition -> `status.progress` and `status.lastCheckpoint`.

Pure: the text comes in, camelCase status fields come out. Only the series named in
`recipe_api.contract` are read; a series the trainer has not set yet is simply absent,
and the matching status field keeps its previous value.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from recipe_api import contract


def read_samples(text: str) -> dict[str, float]:
    """Unlabelled samples by name (the progress series have no labels); NaN/inf dropped."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels or not math.isfinite(sample.value):
                continue
            values[sample.name] = float(sample.value)
    return values


def format_eta(seconds: float) -> str:
    """1h20m, 5m3s, 42s: short enough for a `kubectl get` column."""
    seconds = int(max(0, round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def build_progress(samples: dict[str, float], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """status.progress from the samples, keeping previous values of absent series."""
    progress = dict(previous or {})
    ints = {
        contract.STEP: "step",
        contract.TOTAL_STEPS: "totalSteps",
        contract.CURRICULUM_STAGE: "curriculumStage",
    }
    floats = {
        contract.EPOCH: "epoch",
        contract.LOSS: "loss",
        contract.VALIDATION_LOSS: "validationLoss",
        contract.BEST_VALIDATION_LOSS: "bestValidationLoss",
        contract.TOKENS_PER_SECOND: "tokensPerSecond",
    }
    for name, key in ints.items():
        if name in samples:
            progress[key] = int(samples[name])
    for name, key in floats.items():
        if name in samples:
            progress[key] = round(samples[name], 6)
    step, total = progress.get("step"), progress.get("totalSteps")
    if step is not None and total:
        progress["percent"] = round(100.0 * min(step, total) / total, 2)
    if contract.ETA_SECONDS in samples:
        progress["eta"] = format_eta(samples[contract.ETA_SECONDS])
    return progress


def build_last_checkpoint(
    samples: dict[str, float], previous: dict[str, Any] | None = None, checkpoint_dir: str | None = None
) -> dict[str, Any]:
    """status.lastCheckpoint from the trainer's last-checkpoint gauges."""
    last = dict(previous or {})
    if contract.LAST_CHECKPOINT_STEP in samples:
        step = int(samples[contract.LAST_CHECKPOINT_STEP])
        if step != last.get("step"):
            last["step"] = step
            step_dir = contract.checkpoint_step_dir(step)
            last["path"] = f"{checkpoint_dir}/{step_dir}" if checkpoint_dir else last.get("path")
    if contract.LAST_CHECKPOINT_TIMESTAMP in samples:
        stamp = datetime.fromtimestamp(samples[contract.LAST_CHECKPOINT_TIMESTAMP], tz=UTC)
        last["time"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return last
