"""The one validation of a RecipeTrainingJob, used by `recipe-train validate`, local mode,
the operator's admission webhook and its create handler.

Two layers: pydantic checks each field (types, ranges, unknown keys); `semantic_errors`
checks what spans several fields. Both report `FieldError`s whose `path` is the manifest's
own camelCase path (`spec.curriculum.stages[1].until`), so every message can say exactly
which line of the user's YAML to fix.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from .v1alpha1 import RecipeTrainingJob, RecipeTrainingJobSpec


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidSpecError(ValueError):
    """A manifest that cannot run; `errors` lists every problem, not only the first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def _format_loc(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's union-branch tags such as 'literal['auto']' or 'list[str]'
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    seen: dict[str, FieldError] = {}
    for err in exc.errors():
        path = _format_loc(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = _unknown_field_message(err["loc"])
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and err["type"] not in ("model_type", "dict_type", "value_error"):
            message = f"{message} (got {err['input']!r})"
        # Union branches repeat one problem per branch; keep the first per path.
        seen.setdefault(path, FieldError(path, message))
    return list(seen.values())


def _unknown_field_message(loc: tuple[Any, ...]) -> str:
    """Why a key is unknown, with the closest known name when there is one (`epoch` -> epochs),
    else the names that are allowed there: the camelCase aliases of the model at that place."""
    *parents, name = loc
    known = _field_names_at(tuple(parents))
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]}?"
    if known:
        return f"unknown field; the fields here are {', '.join(known)}"
    return "unknown field; check the spelling against `kubectl explain rtj.spec`"


def _field_names_at(loc: tuple[Any, ...]) -> list[str]:
    """The manifest names of the fields of the model that `loc` (a pydantic error location)
    points into, starting at RecipeTrainingJob; [] where the walk finds no model."""
    model: type[BaseModel] | None = RecipeTrainingJob
    for part in loc:
        if model is None:
            return []
        if not isinstance(part, str) or "[" in part:
            continue  # list indices and union-branch tags stay in the same model
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `X`, `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def world_size(spec: RecipeTrainingJobSpec) -> int:
    """Ranks in the gang: one per GPU, or one per pod on CPU."""
    return spec.resources.nodes * max(1, spec.resources.gpus_per_node)


def gradient_accumulation_steps(spec: RecipeTrainingJobSpec, ranks: int | None = None) -> int:
    """Accumulation derived from globalBatchSize when it is set (semantic_errors checked it)."""
    t = spec.training
    if t.global_batch_size is None:
        return t.gradient_accumulation_steps
    ranks = ranks or world_size(spec)
    return max(1, t.global_batch_size // (t.micro_batch_size * ranks))


def semantic_errors(spec: RecipeTrainingJobSpec) -> list[FieldError]:
    """Cross-field rules the CRD's schema cannot express."""
    errors: list[FieldError] = []
    stages = spec.curriculum.stages
    for i in range(1, len(stages)):
        if stages[i].until <= stages[i - 1].until:
            errors.append(
                FieldError(
                    f"spec.curriculum.stages[{i}].until",
                    f"must be greater than the previous stage's until ({stages[i - 1].until}); "
                    "stages are listed in training order",
                )
            )
    if stages and stages[-1].until != 1.0:
        errors.append(
            FieldError(
                f"spec.curriculum.stages[{len(stages) - 1}].until",
                f"the last stage must end at 1.0 (got {stages[-1].until}) so it covers all of training",
            )
        )
    qt = spec.curriculum.quality_threshold
    if qt.start > qt.end:
        errors.append(
            FieldError(
                "spec.curriculum.qualityThreshold.start",
                f"must be <= end ({qt.end}); the threshold rises during training (got {qt.start})",
            )
        )
    t = spec.training
    if t.global_batch_size is not None:
        per_step = t.micro_batch_size * world_size(spec)
        if t.global_batch_size % per_step:
            errors.append(
                FieldError(
                    "spec.training.globalBatchSize",
                    f"must be a multiple of microBatchSize x world size = {t.micro_batch_size} x "
                    f"{world_size(spec)} = {per_step} (got {t.global_batch_size})",
                )
            )
    if t.scheduler.min_learning_rate >= t.learning_rate:
        errors.append(
            FieldError(
                "spec.training.scheduler.minLearningRate",
                f"must be below learningRate ({t.learning_rate}) (got {t.scheduler.min_learning_rate})",
            )
        )
    if spec.model.init == "scratch" and "model_type" not in spec.model.config:
        errors.append(
            FieldError(
                "spec.model.config",
                "init: scratch builds a fresh model from this config; add model_type (e.g. t5 or gpt2)",
            )
        )
    if spec.training.precision == "fp16" and spec.resources.gpus_per_node == 0:
        errors.append(
            FieldError(
                "spec.training.precision",
                "fp16 needs GPUs; use fp32 or auto when resources.gpusPerNode is 0",
            )
        )
    if spec.lora.enabled and isinstance(spec.lora.target_modules, list) and not spec.lora.target_modules:
        errors.append(FieldError("spec.lora.targetModules", "list is empty; name modules or use auto"))
    return errors


# Kubernetes' quantity grammar (apimachinery resource.ParseQuantity): a non-negative number, then
# a binary-SI suffix, a decimal-SI suffix or an exponent. The CRD's looser pattern lets `1.2.3`
# through, which the API server then refuses when the operator creates the pod or claim.
STRICT_QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
# A Service name, which the job's name becomes: a DNS-1035 label (a letter first).
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def object_errors(job: RecipeTrainingJob) -> list[FieldError]:
    """What the API server would refuse when the operator creates the job's children."""
    errors: list[FieldError] = []
    if not DNS_1035_LABEL.match(job.metadata.name):
        errors.append(
            FieldError(
                "metadata.name",
                f"{job.metadata.name!r} must start with a letter (it names the job's Service, a DNS-1035 "
                "label: lower-case letters, digits and '-')",
            )
        )
    quantities = {
        "spec.resources.cpu": job.spec.resources.cpu,
        "spec.resources.memory": job.spec.resources.memory,
        "spec.resources.sharedMemory": job.spec.resources.shared_memory,
        "spec.checkpoint.volume.size": job.spec.checkpoint.volume.size,
    }
    for path, value in quantities.items():
        if not STRICT_QUANTITY.match(value):
            errors.append(
                FieldError(path, f"{value!r} is not a Kubernetes quantity; write e.g. 8, 500m, 64Gi or 1.5")
            )
    return errors


def parse_job(manifest: Any) -> RecipeTrainingJob:
    """Validate a manifest (a dict from YAML) and return it with every default filled in.

    Raises InvalidSpecError listing every problem with its field path.
    """
    if not isinstance(manifest, dict):
        raise InvalidSpecError([FieldError("(top level)", "a manifest must be a YAML mapping")])
    # kubectl and the API server add these; they are not the user's spec.
    manifest = {k: v for k, v in manifest.items() if k != "status" or v}
    try:
        job = RecipeTrainingJob.model_validate(manifest)
    except ValidationError as exc:
        raise InvalidSpecError(_pydantic_errors(exc)) from None
    errors = object_errors(job) + semantic_errors(job.spec)
    if errors:
        raise InvalidSpecError(errors)
    return job
