"""The checkpoint volume: created per job unless the spec names an existing claim."""

from __future__ import annotations

from typing import Any

from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import object_meta, pvc_name


def checkpoint_claim_name(job: RecipeTrainingJob) -> str:
    return job.spec.checkpoint.volume.claim_name or pvc_name(job)


def build_checkpoint_pvc(job: RecipeTrainingJob, uid: str) -> dict[str, Any] | None:
    """None when the user brought a claim: it is theirs and outlives the job."""
    volume = job.spec.checkpoint.volume
    if volume.claim_name:
        return None
    spec: dict[str, Any] = {
        # Every rank writes its shard of a DeepSpeed checkpoint; multi-node gangs need RWX.
        "accessModes": ["ReadWriteMany" if job.spec.resources.nodes > 1 else "ReadWriteOnce"],
        "resources": {"requests": {"storage": volume.size}},
    }
    if volume.storage_class_name:
        spec["storageClassName"] = volume.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(job, pvc_name(job), uid),
        "spec": spec,
    }
