"""The RecipeTrainingJob API shared by the operator and the trainer.

No torch and no kubernetes imports here (an import-linter contract enforces it), so the
operator image stays slim and `recipe-train validate` starts instantly.
"""

from .manifests import load_jobs
from .status import RecipeTrainingJobStatus
from .trainer_config import TrainerConfig, TrainerRuntime
from .v1alpha1 import RecipeTrainingJob, RecipeTrainingJobSpec
from .validation import FieldError, InvalidSpecError, parse_job, semantic_errors, world_size

__all__ = [
    "FieldError",
    "InvalidSpecError",
    "RecipeTrainingJob",
    "RecipeTrainingJobSpec",
    "RecipeTrainingJobStatus",
    "TrainerConfig",
    "TrainerRuntime",
    "load_jobs",
    "parse_job",
    "semantic_errors",
    "world_size",
]
