"""Names, labels and owner references shared by every child object.

Child names are stable across attempts (the attempt is a label), so pod hostnames, the
master address and the hostfile in the ConfigMap stay valid after a gang restart.
"""

from __future__ import annotations

from typing import Any

from recipe_api.contract import (
    LABEL_ATTEMPT,
    LABEL_COMPONENT,
    LABEL_JOB_NAME,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    TRAINER_COMPONENT,
)
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, KIND, RecipeTrainingJob

# Label keys that belong to the operator; a user's label never overrides them.
OPERATOR_LABELS = (LABEL_JOB_NAME, LABEL_ATTEMPT, LABEL_COMPONENT, LABEL_MANAGED_BY)


def job_name(job: RecipeTrainingJob) -> str:
    """The batch/v1 Job: pods are <name>-<index>, the hostnames DeepSpeed rendezvous on."""
    return job.metadata.name


def service_name(job: RecipeTrainingJob) -> str:
    """The headless Service that gives pod i the DNS name <name>-<i>.<service>."""
    return job.metadata.name


def config_map_name(job: RecipeTrainingJob) -> str:
    return f"{job.metadata.name}-config"


def pvc_name(job: RecipeTrainingJob) -> str:
    return f"{job.metadata.name}-checkpoints"


def child_labels(job: RecipeTrainingJob, attempt: int | None = None) -> dict[str, str]:
    """The contract labels of every child; attempt-specific ones (Job, pods) carry the attempt."""
    labels = {
        LABEL_JOB_NAME: job.metadata.name,
        LABEL_COMPONENT: TRAINER_COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


def carried_labels(job: RecipeTrainingJob) -> dict[str, str]:
    """The user's labels (e.g. kueue.x-k8s.io/queue-name) carried onto the Job and its pods."""
    return {k: v for k, v in job.metadata.labels.items() if k not in OPERATOR_LABELS}


def owner_reference(job: RecipeTrainingJob, uid: str) -> dict[str, Any]:
    """Controller reference: children are garbage-collected with the job and watched as its own."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": job.metadata.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    job: RecipeTrainingJob, name: str, uid: str, attempt: int | None = None, extra: dict | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": {**(extra or {}), **child_labels(job, attempt)},
        "ownerReferences": [owner_reference(job, uid)],
    }
