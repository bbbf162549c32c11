"""Rank 0's Prometheus exposition -> `status.progress`, `status.lastCheckpoint` and the
MetricsScrapeFailed condition.

Pure: the text (or why there is none) comes in, camelCase status fields come out. Only the series named in
`recipe_api.contract` are read; a series the trainer has not set yet is simply absent,
and the matching status field keeps its previous value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from recipe_api import contract
from recipe_api.status import LastCheckpoint, Progress, RecipeTrainingJobStatus

from .phases import set_condition

# Why a scrape of rank 0's /metrics (recipe_operator.scrape) brought no text; defined here, with
# what the pure progress reader does with them, so this module needs no HTTP client.
UNREACHABLE = "Unreachable"  # connection refused, reset or timed out: normal while a pod starts
HTTP_ERROR = "HttpError"
TOO_LARGE = "TooLarge"
COMPRESSED = "Compressed"
UNPARSABLE = "Unparsable"  # set by the caller, which parses the text


@dataclass(frozen=True)
class Scrape:
    """The text of a successful scrape, or why there is none (a reason of REASONS and one line)."""

    text: str | None = None
    failure: str | None = None
    message: str = ""


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


SCRAPE_FAILED = "MetricsScrapeFailed"  # the condition type and the event reason


def record_scrape(
    status: RecipeTrainingJobStatus,
    samples: dict[str, float] | None,
    scrape: Scrape,
    checkpoint_dir: str,
    now: datetime,
) -> str | None:
    """Fold one scrape into `status` (changed in place): the samples into progress and
    lastCheckpoint, a failure into the MetricsScrapeFailed condition. Returns the message of the
    Warning event to post: only when the condition turns True or its reason changes, so a
    trainer that keeps answering a bomb costs one event, not one every interval. An unreachable
    endpoint is normal while a pod starts: it changes nothing here (the caller counts it)."""
    if samples is not None:
        status.progress = Progress.model_validate(
            build_progress(samples, status.progress.model_dump(by_alias=True, exclude_none=True))
        )
        status.last_checkpoint = LastCheckpoint.model_validate(
            build_last_checkpoint(
                samples, status.last_checkpoint.model_dump(by_alias=True, exclude_none=True), checkpoint_dir
            )
        )
        if any(c.type == SCRAPE_FAILED and c.status == "True" for c in status.conditions):
            status.conditions = set_condition(
                status.conditions, SCRAPE_FAILED, False, "Scraped", "rank 0's /metrics read again", now
            )
        return None
    if scrape.failure is None or scrape.failure == UNREACHABLE:
        return None
    held = next((c for c in status.conditions if c.type == SCRAPE_FAILED and c.status == "True"), None)
    message = f"progress not mirrored: {scrape.message}"
    status.conditions = set_condition(status.conditions, SCRAPE_FAILED, True, scrape.failure, message, now)
    return None if held is not None and held.reason == scrape.failure else message
