"""The Indexed Job of one attempt: one pod per node, each running the DeepSpeed launcher.

The container's command is the trainer's pod supervisor (PID 1), which runs the launcher with
the arguments of `build_launch` and forwards the kubelet's SIGTERM (preemption, eviction, deletion) to the
ranks, so they checkpoint at the end of the step before they exit.

Pod i gets the hostname <job>-i under the headless Service (subdomain), so rank 0 is
<job>-0.<service>; DeepSpeed runs without SSH (`--no_ssh --node_rank=i`), so no keys, no MPI.
`backoffLimit: 0`: the operator, not the Job controller, restarts the whole gang.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from recipe_api.base import ApiModel
from recipe_api.contract import METRICS_PORT_NAME, TRAINER_CONTAINER_NAME, WANDB_API_KEY_ENV, WEBHOOK_URL_ENV
from recipe_api.launch import Rendezvous, TrainerLaunch, trainer_launch
from recipe_api.trainer_config import (
    CHECKPOINT_MOUNT_PATH,
    CONFIG_FILE_NAME,
    CONFIG_MOUNT_PATH,
    HOSTFILE_NAME,
    TERMINATION_LOG_PATH,
)
from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import carried_labels, child_labels, config_map_name, job_name, object_meta, service_name
from .configmap import build_trainer_config
from .pvc import checkpoint_claim_name
from .service import MASTER_PORT, MASTER_PORT_NAME

# Names Kubernetes and Kueue define; the rest of the operator imports them from here.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"  # also a pod label (1.28+)
GPU_RESOURCE = "nvidia.com/gpu"
RUN_AS_USER = 1000  # the trainer image's numeric user (trainer_image/Dockerfile)
# Downloads (Hugging Face models and datasets) and other caches go to a volume of their own, not to
# the container's writable layer: the kubelet accounts for it, and a custom image needs no HOME.
CACHE_MOUNT_PATH = "/var/cache/recipe-trainer"
CACHE_SIZE_LIMIT = "20Gi"
EPHEMERAL_STORAGE_REQUEST = "1Gi"  # logs, the writable layer; the cache volume has its own limit
_CPU_SUFFIXES = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(1000)}


def whole_cores(cpu: str) -> int:
    """The pod's CPU quantity as whole cores, at least 1: the threads its ranks share
    (OMP_NUM_THREADS), since a rank otherwise sizes its thread pools to every core of the node."""
    suffix = cpu[-1] if cpu[-1:] in ("m", "k") else ""
    number = cpu[: len(cpu) - len(suffix)]
    try:
        return max(1, int(Decimal(number) * _CPU_SUFFIXES[suffix]))
    except (InvalidOperation, KeyError):
        return 1


def build_launch(job: RecipeTrainingJob) -> TrainerLaunch:
    """The trainer's launch in a pod (`recipe_api.launch.trainer_launch`) under the pod supervisor,
    set as the container's command rather than left to the image's ENTRYPOINT: a user's own image
    (spec.resources.image) with another entrypoint, or none, still starts the DeepSpeed launcher.
    Not `deepspeed` itself: as PID 1 it would ignore the kubelet's SIGTERM, and the ranks would
    never checkpoint before the SIGKILL. Any image whose `python` can run TRAINER_MODULE has the
    supervisor."""
    rendezvous = None
    if job.spec.resources.nodes > 1:
        rendezvous = Rendezvous(
            hostfile=f"{CONFIG_MOUNT_PATH}/{HOSTFILE_NAME}",
            node_rank="$(JOB_COMPLETION_INDEX)",
            master_addr=f"{job_name(job)}-0.{service_name(job)}",
        )
    config_path = f"{CONFIG_MOUNT_PATH}/{CONFIG_FILE_NAME}"
    return trainer_launch(
        build_trainer_config(job),
        config_path,
        master_port=MASTER_PORT,
        rendezvous=rendezvous,
        supervised=True,
        cpus=whole_cores(job.spec.resources.cpu),
    )


def _env(job: RecipeTrainingJob, launch: TrainerLaunch) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}
            },
        },
    ]
    env += [{"name": name, "value": value} for name, value in launch.env.items()]
    env += [
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT_PATH}/huggingface"},
        {"name": "XDG_CACHE_HOME", "value": CACHE_MOUNT_PATH},
    ]
    notifications = job.spec.notifications
    for name, ref in (
        (WEBHOOK_URL_ENV, notifications.webhook_secret_ref),
        (WANDB_API_KEY_ENV, notifications.wandb.api_key_secret_ref),
    ):
        if ref is not None:
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    # the user's (references only, so no value is ever in the Job): after ours, never replacing them
    env += [_as_kubernetes(e) for e in job.spec.resources.env]
    return env


def _resources(job: RecipeTrainingJob) -> dict[str, Any]:
    r = job.spec.resources
    amounts: dict[str, str] = {"cpu": r.cpu, "memory": r.memory}
    if r.gpus_per_node:
        amounts[GPU_RESOURCE] = str(r.gpus_per_node)
    amounts.update({name: str(count) for name, count in r.extra_resources.items()})
    return {
        "requests": {**amounts, "ephemeral-storage": EPHEMERAL_STORAGE_REQUEST},
        "limits": dict(amounts),
    }


def _volumes(job: RecipeTrainingJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(job)}},
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint_claim_name(job)}},
        # NCCL and DataLoader workers need more shared memory than the container default 64Mi;
        # the limit keeps a runaway writer from taking the pod's memory (spec.resources.sharedMemory).
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": job.spec.resources.shared_memory}},
        {"name": "cache", "emptyDir": {"sizeLimit": CACHE_SIZE_LIMIT}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_MOUNT_PATH, "readOnly": True},
        {"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT_PATH},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "cache", "mountPath": CACHE_MOUNT_PATH},
    ]
    dataset_volume = job.spec.dataset.volume
    if dataset_volume is not None:
        volumes.append({"name": "dataset", "persistentVolumeClaim": {"claimName": dataset_volume.claim_name}})
        mounts.append({"name": "dataset", "mountPath": dataset_volume.mount_path, "readOnly": True})
    return volumes, mounts


def _as_kubernetes(model: ApiModel) -> dict[str, Any]:
    """A spec field that mirrors a core/v1 type, as the pod spec writes it (unset fields left out)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def _run_as_user(job: RecipeTrainingJob) -> int | None:
    """spec.resources.runAsUser; unset, the operator's image runs as its uid 1000 and a user's own
    image as its own USER (None: Kubernetes takes the image's; runAsNonRoot still refuses root)."""
    resources = job.spec.resources
    if resources.run_as_user is not None:
        return resources.run_as_user
    return RUN_AS_USER if resources.image is None else None


def _avoiding(nodes: tuple[str, ...]) -> dict[str, Any]:
    """A required node affinity off these nodes, by node name (matchFields on metadata.name: the
    name the pod's spec.nodeName had; the hostname label may differ from it)."""
    off = {"key": "metadata.name", "operator": "NotIn", "values": list(nodes)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [off]}]}
        }
    }


def build_job(
    job: RecipeTrainingJob,
    uid: str,
    attempt: int,
    default_image: str,
    active_deadline_seconds: int | None = None,
    avoid_nodes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The batch/v1 Job of `attempt`.

    `avoid_nodes`: nodes whose GPU failed under an earlier attempt (status.avoidedNodes); the
    pods get a required node affinity off them, so the gang restarts elsewhere.

    `active_deadline_seconds` is what is left of runPolicy.activeDeadlineSeconds (counted from
    the job's start across attempts). A job labelled with a Kueue queue is created suspended:
    Kueue admits it by unsuspending it.
    """
    resources = job.spec.resources
    user_labels = carried_labels(job)
    volumes, mounts = _volumes(job)
    launch = build_launch(job)
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER_NAME,
        "image": resources.image or default_image,
        "command": launch.command,
        "args": launch.args,
        "env": _env(job, launch),
        "resources": _resources(job),
        "ports": [
            {"name": METRICS_PORT_NAME, "containerPort": job.spec.metrics.port, "protocol": "TCP"},
            {"name": MASTER_PORT_NAME, "containerPort": MASTER_PORT, "protocol": "TCP"},
        ],
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if resources.env_from:
        container["envFrom"] = [_as_kubernetes(source) for source in resources.env_from]
    if resources.capabilities.add:  # opt-in; the pod then needs Pod Security "baseline"
        container["securityContext"]["capabilities"]["add"] = list(resources.capabilities.add)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # SIGTERM -> the gang's stop checkpoint (recipe_trainer.pod_supervisor) must fit in it
        "terminationGracePeriodSeconds": job.spec.run_policy.termination_grace_period_seconds,
        "subdomain": service_name(job),
        # The trainer never calls the API: no token of the namespace's ServiceAccount for its image.
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": volumes,
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": resources.run_as_user
            or RUN_AS_USER,  # the checkpoint volume is writable by this group
            # Change the checkpoint volume's ownership only when its root is not already ours:
            # the default walks every file of every checkpoint at each attempt's start.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    user = _run_as_user(job)
    if user is not None:
        container["securityContext"]["runAsUser"] = user
        pod_spec["securityContext"]["runAsUser"] = user
    if resources.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [_as_kubernetes(ref) for ref in resources.image_pull_secrets]
    if resources.node_selector:
        pod_spec["nodeSelector"] = dict(resources.node_selector)
    if resources.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in resources.tolerations]
    if resources.priority_class_name:
        pod_spec["priorityClassName"] = resources.priority_class_name
    if avoid_nodes:
        pod_spec["affinity"] = _avoiding(avoid_nodes)
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": resources.nodes,
        "parallelism": resources.nodes,
        "backoffLimit": 0,
        "suspend": KUEUE_QUEUE_LABEL in user_labels,
        "template": {
            "metadata": {"labels": {**user_labels, **child_labels(job, attempt)}},
            "spec": pod_spec,
        },
    }
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, int(active_deadline_seconds))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_meta(job, job_name(job), uid, attempt, extra=user_labels),
        "spec": spec,
    }
