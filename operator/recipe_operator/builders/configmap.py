"""The ConfigMap the trainer reads: the resolved trainer config and the DeepSpeed hostfile."""

from __future__ import annotations

import posixpath
from typing import Any

from recipe_api.trainer_config import (
    CHECKPOINT_MOUNT_PATH,
    CONFIG_FILE_NAME,
    HOSTFILE_NAME,
    TrainerConfig,
    TrainerRuntime,
)
from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import config_map_name, job_name, object_meta, service_name

RUN_DIR_NAME = "run"
CONFIG_MAP_KEYS = (CONFIG_FILE_NAME, HOSTFILE_NAME)


def build_trainer_config(job: RecipeTrainingJob) -> TrainerConfig:
    """Every default filled in; state lives on the checkpoint volume so a restarted gang finds it."""
    return TrainerConfig(
        name=job.metadata.name,
        namespace=job.metadata.namespace,
        spec=job.spec,
        runtime=TrainerRuntime(
            checkpoint_dir=CHECKPOINT_MOUNT_PATH,
            run_dir=posixpath.join(CHECKPOINT_MOUNT_PATH, RUN_DIR_NAME),
        ),
    )


def build_hostfile(job: RecipeTrainingJob) -> str:
    """DeepSpeed's `host slots=N` lines, one per pod, by their stable Indexed Job hostnames."""
    slots = job.spec.resources.gpus_per_node or 1
    svc = service_name(job)
    return "".join(f"{job_name(job)}-{i}.{svc} slots={slots}\n" for i in range(job.spec.resources.nodes))


def build_config_map(job: RecipeTrainingJob, uid: str) -> dict[str, Any]:
    data = {CONFIG_FILE_NAME: build_trainer_config(job).to_yaml()}
    if job.spec.resources.nodes > 1:
        data[HOSTFILE_NAME] = build_hostfile(job)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(job, config_map_name(job), uid),
        "data": data,
    }
