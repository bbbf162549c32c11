"""The checkpoint volume: created per job unless the spec names an existing claim.

The claim the operator creates has no owner: deleting the RecipeTrainingJob keeps it (and the
volume behind it, whatever the storage class's reclaim policy), so re-creating a job of the same
name resumes from its newest checkpoint, the documented recovery. Releasing it is explicit:
`kubectl delete pvc <job>-checkpoints` (docs/install.md, RecipeTrainingJobFailed)."""

from __future__ import annotations

from typing import Any

from recipe_api.contract import LABEL_JOB_NAME
from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import object_meta, pvc_name

KEPT_ANNOTATION = "training.chefgenius.io/kept-checkpoints"


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
    metadata = object_meta(job, pvc_name(job), uid)
    del metadata["ownerReferences"]  # outlives the job: see the module docstring
    metadata.setdefault("annotations", {})[KEPT_ANNOTATION] = "kept when the RecipeTrainingJob is deleted"
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}


def kept_for(obj: dict[str, Any], job_name: str) -> bool:
    """A checkpoint claim this operator made for a job of this name, kept after its deletion: a
    re-created job adopts it (and resumes from it) instead of failing on a name conflict."""
    meta = obj.get("metadata") or {}
    return (
        obj.get("kind") == "PersistentVolumeClaim"
        and KEPT_ANNOTATION in (meta.get("annotations") or {})
        and (meta.get("labels") or {}).get(LABEL_JOB_NAME) == job_name
        and not meta.get("ownerReferences")
    )


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
