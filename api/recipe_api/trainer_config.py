"""The resolved trainer config: what the operator writes into the job's ConfigMap and local
mode writes into `runs/<name>/trainer-config.yaml`, and the only input of the trainer.

It is the validated job (every default filled in) plus where this run keeps its state. The
trainer re-validates it with the same models, so there is no second schema to drift.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field

from .base import ApiModel
from .status import Evaluation
from .v1alpha1 import RecipeTrainingJobSpec

# In-pod paths shared by the operator (which mounts them) and the trainer (which uses them).
CHECKPOINT_MOUNT_PATH = "/checkpoints"
CONFIG_MOUNT_PATH = "/etc/recipe-trainer"
CONFIG_FILE_NAME = "trainer-config.yaml"
HOSTFILE_NAME = "hostfile"
TERMINATION_LOG_PATH = "/dev/termination-log"


def job_checkpoint_dir(namespace: str | None, name: str, claim_name: str | None) -> str:
    """Where a job keeps its checkpoints in its pods. The claim the operator creates is the job's
    alone: its root. A claim the spec names (checkpoint.volume.claimName) may hold other jobs'
    checkpoints too: `<namespace>/<name>` under it, so one job never resumes from, prunes or
    deletes another's (issue 23, finding 5). A job deleted and created again under the same
    namespace and name finds its checkpoints there and resumes."""
    if not claim_name:
        return CHECKPOINT_MOUNT_PATH
    return f"{CHECKPOINT_MOUNT_PATH}/{namespace or 'default'}/{name}"


class TrainerRuntime(ApiModel):
    checkpoint_dir: str = Field(description="Directory of checkpoints (the volume in a cluster).")
    run_dir: str = Field(description="Directory of logs, curves and caches for this run.")
    termination_log: str = Field(
        TERMINATION_LOG_PATH, description="Where the one-line failure reason or JSON summary goes."
    )
    cache_dir: str | None = Field(None, description="Tokenized-data cache (default: under run_dir).")


class TrainerConfig(ApiModel):
    name: str = Field(description="The RecipeTrainingJob's name.")
    namespace: str | None = Field(None, description="Its namespace (null in local mode).")
    uid: str | None = Field(
        None,
        description="The RecipeTrainingJob's uid when the checkpoint was written (null in local mode); "
        "recorded, not compared: a job created again under the same name resumes.",
    )
    spec: RecipeTrainingJobSpec = Field(description="The validated spec, defaults filled in.")
    runtime: TrainerRuntime = Field(description="Where this run keeps its state.")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_manifest(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrainerConfig:
        data: Any = yaml.safe_load(text)
        return cls.model_validate(data)


class TerminationSummary(ApiModel):
    """What a successful trainer writes to its termination log, and the operator reads back
    into `status.evaluation` / `status.lastCheckpoint` (Kubernetes caps it at 4096 bytes)."""

    step: int = Field(description="Final optimizer step.")
    epoch: float = Field(0, description="Epochs done.")
    best_checkpoint: str | None = Field(None, description="Path of the best checkpoint.")
    last_checkpoint: str | None = Field(None, description="Path of the final checkpoint.")
    stopped_early: bool = Field(False, description="Early stopping ended training.")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="Final evaluation numbers.")
