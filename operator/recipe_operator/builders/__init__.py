"""Pure builders of the objects one RecipeTrainingJob owns: no I/O, table-tested."""

from .common import (
    child_labels,
    config_map_name,
    job_name,
    owner_reference,
    pvc_name,
    service_name,
)
from .configmap import CONFIG_MAP_KEYS, build_config_map, build_hostfile, build_trainer_config
from .job import build_job, build_launch
from .pvc import build_checkpoint_pvc, checkpoint_claim_name, kept_for, volume_mismatch
from .service import build_service

__all__ = [
    "CONFIG_MAP_KEYS",
    "build_checkpoint_pvc",
    "build_config_map",
    "build_hostfile",
    "build_job",
    "build_launch",
    "build_service",
    "build_trainer_config",
    "checkpoint_claim_name",
    "kept_for",
    "volume_mismatch",
    "child_labels",
    "config_map_name",
    "job_name",
    "owner_reference",
    "pvc_name",
    "service_name",
]
