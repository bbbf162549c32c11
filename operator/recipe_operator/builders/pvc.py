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


SHARED_MODES = {"ReadWriteMany"}  # a volume every node of the gang can write
SHARED_READ_MODES = {"ReadWriteMany", "ReadOnlyMany"}  # ... or at least read (the dataset)


def volume_mismatch(job: RecipeTrainingJob, claim: dict[str, Any], what: str) -> str | None:
    """Why this claim cannot serve a gang of spec.resources.nodes pods, or None when it can.
    `what` is "checkpoint" or "dataset". A ReadWriteOnce volume attaches to one node: the pod on
    the next node waits out Multi-Attach, the gang's collective timeout fires, and the job restarts
    until backoffLimit. Access modes cannot change on an existing claim, so growing `nodes` from 1
    needs another claim."""
    nodes = job.spec.resources.nodes
    if nodes <= 1:
        return None
    spec = claim.get("spec") or {}
    modes = set(spec.get("accessModes") or [])
    needed = SHARED_MODES if what == "checkpoint" else SHARED_READ_MODES
    if modes & needed:
        return None
    name = (claim.get("metadata") or {}).get("name")
    field = "spec.checkpoint.volume.claimName" if what == "checkpoint" else "spec.dataset.volume.claimName"
    return (
        f"the {what} volume {name} is {', '.join(sorted(modes)) or 'without access modes'}: one node "
        f"mounts it, but spec.resources.nodes is {nodes}. Set {field} to a {' or '.join(sorted(needed))} "
        f"claim (copy what {name} holds into it) or set nodes back to 1; {name} and its files are kept"
    )
