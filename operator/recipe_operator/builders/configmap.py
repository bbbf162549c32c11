"""The ConfigMap the trainer reads: the resolved trainer config and the DeepSpeed hostfile."""

from __future__ import annotations

import posixpath
from typing import Any

from recipe_api.trainer_config import (
    CONFIG_FILE_NAME,
    HOSTFILE_NAME,
    TrainerConfig,
    TrainerRuntime,
    job_checkpoint_dir,
)
from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import config_map_name, job_name, object_meta, service_name

RUN_DIR_NAME = "run"
CONFIG_MAP_KEYS = (CONFIG_FILE_NAME, HOSTFILE_NAME)


def build_trainer_config(job: RecipeTrainingJob, uid: str | None = None) -> TrainerConfig:
    """Every default filled in; state lives on the checkpoint volume so a restarted gang finds it."""
    checkpoint_dir = job_checkpoint_dir(
        job.metadata.namespace, job.metadata.name, job.spec.checkpoint.volume.claim_name
    )
    return TrainerConfig(
        name=job.metadata.name,
        namespace=job.metadata.namespace,
        uid=uid or None,
        spec=job.spec,
        runtime=TrainerRuntime(
            checkpoint_dir=checkpoint_dir, run_dir=posixpath.join(checkpoint_dir, RUN_DIR_NAME)
        ),
    )


def build_hostfile(job: RecipeTrainingJob) -> str:
    """DeepSpeed's `host slots=N` lines, one per pod, by their stable Indexed Job hostnames."""
    slots = job.spec.resources.gpus_per_node or 1
    svc = service_name(job)
    return "".join(f"{job_name(job)}-{i}.{svc} slots={slots}\n" for i in range(job.spec.resources.nodes))


def build_config_map(job: RecipeTrainingJob, uid: str) -> dict[str, Any]:
    data = {CONFIG_FILE_NAME: build_trainer_config(job, uid).to_yaml()}
    if job.spec.resources.nodes > 1:
        data[HOSTFILE_NAME] = build_hostfile(job)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(job, config_map_name(job), uid),
        "data": data,
    }
