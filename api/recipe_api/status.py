"""The status of a RecipeTrainingJob: what the operator writes (phases, conditions, progress,
checkpoint, failure, evaluation) and `kubectl get rtj` shows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .base import ApiModel

Phase = Literal["Pending", "Launching", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
TERMINAL_PHASES = ("Succeeded", "Failed")
AVOIDED_NODES_LIMIT = 8  # a gang that faults on more nodes than this has a problem no node fixes

# Every message the operator writes (conditions, failure, events) is cut to this many characters,
# so a spec that echoes a huge value into its error cannot push the object past etcd's limit
# (issue 23, finding 6): with one entry per condition type the whole status stays under
# STATUS_MAX_BYTES whatever the spec holds.
MESSAGE_MAX_CHARS = 1024
STATUS_MAX_BYTES = 32 * 1024


def cap_message(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """`text` if short enough, else its start and how much was cut."""
    if len(text) <= limit:
        return text
    suffix = f" ... ({len(text)} characters, cut)"
    return text[: limit - len(suffix)] + suffix


Message = Annotated[str, AfterValidator(cap_message)]


class Condition(ApiModel):
    type: str = Field(
        description="Created, Running, Restarting, Suspended, Succeeded, Failed, InvalidSpec, Queued, "
        "MetricsScrapeFailed (rank 0's /metrics refused: compressed, over 1 MiB, not Prometheus text)."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field("", description="CamelCase reason for the last transition.")
    message: Message = Field("", description="Human-readable detail (at most 1024 characters).")
    last_transition_time: str | None = Field(None, description="RFC 3339 time of the last change.")


class Progress(ApiModel):
    step: int = Field(0, description="Optimizer steps done.")
    total_steps: int = Field(0, description="Optimizer steps planned.")
    percent: float | None = Field(None, description="step / totalSteps in percent.")
    epoch: float = Field(0, description="Epochs done (fractional).")
    loss: float | None = Field(None, description="Latest training loss.")
    validation_loss: float | None = Field(None, description="Latest validation loss.")
    best_validation_loss: float | None = Field(None, description="Best validation loss so far.")
    tokens_per_second: float | None = Field(None, description="Real (non-padding) tokens per second.")
    eta: str | None = Field(None, description="Estimated time to finish, e.g. 1h20m.")
    curriculum_stage: int | None = Field(None, description="Current curriculum stage (0-based).")


class LastCheckpoint(ApiModel):
    step: int | None = Field(None, description="Step of the newest complete checkpoint.")
    path: str | None = Field(None, description="Its path on the checkpoint volume.")
    time: str | None = Field(None, description="When it was written (RFC 3339).")


class Failure(ApiModel):
    reason: str | None = Field(None, description="OOMKilled, Evicted, NodeLost, ImagePullBackOff, ...")
    message: Message | None = Field(
        None, description="Detail, e.g. the trainer's termination message (at most 1024 characters)."
    )
    pod: str | None = Field(None, description="The pod that failed.")
    exit_code: int | None = Field(None, description="Container exit code.")


class Evaluation(ApiModel):
    validation_loss: float | None = Field(None, description="Final validation loss.")
    perplexity: float | None = Field(None, description="Final validation perplexity.")
    quality: float | None = Field(None, description="Mean quality score of generated recipes.")
    best_checkpoint: str | None = Field(None, description="Path of the best checkpoint.")


class RecipeTrainingJobStatus(ApiModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)
    phase: Phase = Field("Pending", description="Where the job is in its life cycle.")
    conditions: list[Condition] = Field(default_factory=list, description="Kubernetes-style conditions.")
    attempt: int = Field(1, description="Current gang attempt (1-based).")
    restarts: int = Field(0, description="Gang restarts so far.")
    disruptions: int = Field(
        0,
        description="Gang restarts the cluster caused (preemption, eviction, a drain, node loss); "
        "runPolicy.backoffLimit does not count them.",
    )
    start_time: str | None = Field(None, description="When the first attempt started.")
    completion_time: str | None = Field(None, description="When the job finished.")
    admission_time: str | None = Field(None, description="When a queue last admitted the job.")
    progress: Progress = Field(default_factory=Progress, description="Training progress from rank 0.")
    last_checkpoint: LastCheckpoint = Field(default_factory=LastCheckpoint, description="Newest checkpoint.")
    failure: Failure = Field(default_factory=Failure, description="Why the job (or the last attempt) failed.")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="Final evaluation results.")
    avoided_nodes: list[str] = Field(
        default_factory=list,
        max_length=AVOIDED_NODES_LIMIT,
        description="Nodes whose GPU failed under this job (GPUFault); later attempts are kept off them "
        f"by node affinity. Newest last, at most {AVOIDED_NODES_LIMIT}.",
    )
