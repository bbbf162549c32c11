"""Names both sides of the system must agree on, defined once.

The trainer *defines* these Prometheus metrics (recipe_trainer.training.metrics), the operator *reads*
some of them from rank 0's /metrics into `status.progress`, and the Helm chart's dashboards
and alerts query them; a test checks the chart against the exported names. Labels are put on
every child object by the operator and used by the chart's PodMonitor relabelling.
"""

from __future__ import annotations

# ---- labels on every object the operator creates (and on trainer pods)
LABEL_JOB_NAME = "training.chefgenius.io/job-name"
LABEL_ATTEMPT = "training.chefgenius.io/attempt"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "recipe-training-operator"
TRAINER_COMPONENT = "trainer"
TRAINER_CONTAINER_NAME = "trainer"
METRICS_PORT_NAME = "metrics"

# ---- trainer metrics (gauges unless the name ends in _total; base units)
TRAINER_METRIC_PREFIX = "recipe_trainer_"
STEP = "recipe_trainer_step"
TOTAL_STEPS = "recipe_trainer_total_steps"
EPOCH = "recipe_trainer_epoch"
LOSS = "recipe_trainer_loss"  # plain cross-entropy per target token, comparable with VALIDATION_LOSS
TRAINING_OBJECTIVE = "recipe_trainer_training_objective"  # what is optimised: label-smoothed CE
LEARNING_RATE = "recipe_trainer_learning_rate"
GRAD_NORM = "recipe_trainer_grad_norm"
TOKENS_PER_SECOND = "recipe_trainer_tokens_per_second"
SAMPLES_PER_SECOND = "recipe_trainer_samples_per_second"
TOKENS_TOTAL = "recipe_trainer_tokens_total"
VALIDATION_LOSS = "recipe_trainer_validation_loss"
VALIDATION_PERPLEXITY = "recipe_trainer_validation_perplexity"
BEST_VALIDATION_LOSS = "recipe_trainer_best_validation_loss"
QUALITY_SCORE = "recipe_trainer_quality_score"  # label: metric (overall, coherence, ...)
CURRICULUM_STAGE = "recipe_trainer_curriculum_stage"
QUALITY_THRESHOLD = "recipe_trainer_quality_threshold"
GRADIENT_NOISE_SIGMA = "recipe_trainer_gradient_noise_sigma"
CHECKPOINT_SAVE_SECONDS = "recipe_trainer_checkpoint_save_seconds"  # histogram
CHECKPOINT_SIZE_BYTES = "recipe_trainer_checkpoint_size_bytes"
LAST_CHECKPOINT_STEP = "recipe_trainer_last_checkpoint_step"
LAST_CHECKPOINT_TIMESTAMP = "recipe_trainer_last_checkpoint_timestamp_seconds"
ETA_SECONDS = "recipe_trainer_eta_seconds"
GPU_MEMORY_ALLOCATED_BYTES = "recipe_trainer_gpu_memory_allocated_bytes"
GPU_MEMORY_RESERVED_BYTES = "recipe_trainer_gpu_memory_reserved_bytes"
NONFINITE_STEPS_TOTAL = "recipe_trainer_nonfinite_steps_total"
PACKING_EFFICIENCY = "recipe_trainer_packing_efficiency"


# ---- checkpoint directories on the volume (the trainer writes them, the operator reports them)
_STEP_DIR_PREFIX = "step-"


def checkpoint_step_dir(step: int) -> str:
    """Name of the complete checkpoint of optimizer step `step`, e.g. step-00000120."""
    return f"{_STEP_DIR_PREFIX}{step:08d}"


def checkpoint_step_of(name: str) -> int | None:
    """The step a checkpoint directory name stands for, or None for any other name."""
    digits = name.removeprefix(_STEP_DIR_PREFIX)
    if digits == name or not digits.isdigit():
        return None
    step = int(digits)
    return step if checkpoint_step_dir(step) == name else None


# ---- how the trainer starts: `deepspeed --module TRAINER_MODULE train --config ...`, from the
# operator's Job (pods) and from local mode's launcher alike
TRAINER_MODULE = "recipe_trainer.cli"
# A pod's PID 1, which runs that launcher and forwards the kubelet's SIGTERM to the ranks, so a
# preempted pod leaves a stop checkpoint (recipe_trainer/pod_supervisor.py says why it is needed).
POD_SUPERVISOR_MODULE = "recipe_trainer.pod_supervisor"


# ---- environment of trainer pods (the operator sets them from Secrets, the trainer reads them)
WEBHOOK_URL_ENV = "RECIPE_TRAINER_WEBHOOK_URL"
WANDB_API_KEY_ENV = "WANDB_API_KEY"


# ---- trainer exit codes the operator classifies (recipe_operator.failures)
# A rank whose peer vanished (connection reset or closed, or the collective timed out) is a victim,
# not the cause: it exits with this code so the operator restarts the gang instead of failing the
# job as a trainer error. 128+ is the retryable range of Kubeflow's ExitCode policy, which the
# operator follows; 141 is 128+SIGPIPE, the conventional code of a broken connection.
EXIT_CODE_PEER_LOST = 141


# ---- what torch, NCCL and CUDA write when the gang's transport or a GPU fails (lower case; found
# in the trainer's exception text, or in the log tail Kubernetes keeps when a rank died of a signal,
# e.g. the NCCL watchdog's SIGABRT, and wrote no termination message). The trainer picks its exit
# code by them; the operator classifies a failed pod by them (recipe_operator.failures).
# A peer vanished or hung: gloo's and NCCL's words, and torch's NCCL watchdog on a timeout.
PEER_LOST_MARKERS = (
    "connection reset by peer",
    "connection closed by peer",
    "connection closed by remote peer",  # NCCL socket transport: "socketProgress: Connection closed by remote peer"
    "ncclremoteerror",  # "remote process exited or there was a network error"
    "remote process exited or there was a network error",
    "timed out waiting",
    "socket timeout",
    "broken pipe",
    "nccl communicator was aborted",
    "watchdog caught collective operation timeout",
)
# The GPU or its driver failed under a healthy program: another node may well run it.
GPU_FAULT_MARKERS = (
    "an illegal memory access was encountered",
    "uncorrectable ecc error encountered",
    "unspecified launch failure",
    "gpu is lost",
    "fallen off the bus",
    "nvrm: xid",
    "cuda error: unknown error",
)
# The image holds no kernel for this GPU's architecture: no node of this kind can run it.
UNSUPPORTED_GPU_MARKERS = (
    "no kernel image is available for execution on the device",
    "is not compatible with the current pytorch installation",
)
# Prefixes the trainer puts before its one-line reason so the operator need not guess.
UNSUPPORTED_GPU_PREFIX = "UnsupportedGPU: "
