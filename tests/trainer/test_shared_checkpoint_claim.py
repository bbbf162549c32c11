"""Issue 23, finding 5: two jobs on one checkpoint claim destroyed each other. The claim was
mounted at its root for both, so job B resumed from job A's newest checkpoint, pruned A's
checkpoints and best.json, and deleted A's in-progress `.tmp-step-*` directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipe_api import parse_job
from recipe_api.contract import checkpoint_step_dir
from recipe_api.trainer_config import CHECKPOINT_MOUNT_PATH
from recipe_operator.builders import build_trainer_config
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.training.checkpointing import CheckpointWriter, find_resume_checkpoint


def job(name: str, namespace: str = "ml", claim: str | None = "shared-ckpt"):
    volume = {"claimName": claim} if claim else {}
    return parse_job(
        {
            "apiVersion": "training.chefgenius.io/v1alpha1",
            "kind": "RecipeTrainingJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "model": {"name": "m"},
                "dataset": {"path": "/d"},
                "checkpoint": {"keepLast": 1, "volume": volume},
            },
        }
    )


def on_claim(claim: Path, pod_path: str) -> Path:
    """The claim's files as a pod sees them under CHECKPOINT_MOUNT_PATH."""
    return claim / Path(pod_path).relative_to(CHECKPOINT_MOUNT_PATH)


def write_checkpoint(root: Path, step: int, config_yaml: str) -> Path:
    checkpoint = root / checkpoint_step_dir(step)
    checkpoint.mkdir(parents=True)
    (checkpoint / layout.CONFIG_FILE).write_text(config_yaml)
    (checkpoint / layout.STATE_FILE).write_text(json.dumps({"step": step}))
    return checkpoint


def test_two_jobs_on_one_claim_never_touch_each_others_checkpoints(tmp_path):
    a_config, b_config = build_trainer_config(job("a"), "uid-a"), build_trainer_config(job("b"), "uid-b")
    a_root = on_claim(tmp_path, a_config.runtime.checkpoint_dir)
    b_root = on_claim(tmp_path, b_config.runtime.checkpoint_dir)
    a_steps = [write_checkpoint(a_root, step, a_config.to_yaml()) for step in (10, 20, 30)]
    (a_root / layout.BEST_FILE).write_text(json.dumps({"step": 10, "path": a_steps[0].name}))
    a_in_progress = a_root / (layout.TMP_PREFIX + checkpoint_step_dir(40))
    a_in_progress.mkdir()

    assert find_resume_checkpoint(b_root, None, "ml", "b") is None  # B starts fresh
    b_writer = CheckpointWriter(b_root, rank=0, keep_last=1, barrier=lambda: None)
    write_checkpoint(b_root, 5, b_config.to_yaml())
    b_writer._remove_leftovers()
    b_writer.prune()

    assert all(step.is_dir() for step in a_steps) and a_in_progress.is_dir()
    assert (a_root / layout.BEST_FILE).is_file()
    assert find_resume_checkpoint(a_root, None, "ml", "a") == a_steps[-1]


def test_the_directory_is_namespace_and_name_and_the_uid_is_recorded():
    config = build_trainer_config(job("flan", "team-a"), "1234-uid")
    assert config.runtime.checkpoint_dir == f"{CHECKPOINT_MOUNT_PATH}/team-a/flan"
    assert config.runtime.run_dir.startswith(config.runtime.checkpoint_dir + "/")
    assert config.uid == "1234-uid"
    # The claim the operator creates is the job's own: its root, as before.
    assert build_trainer_config(job("flan", claim=None), "u").runtime.checkpoint_dir == CHECKPOINT_MOUNT_PATH


def test_a_job_created_again_under_its_name_resumes_from_its_checkpoints(tmp_path):
    """Deleted and created again: a new uid, the same namespace and name, the same directory."""
    before, after = build_trainer_config(job("flan"), "uid-1"), build_trainer_config(job("flan"), "uid-2")
    assert before.runtime.checkpoint_dir == after.runtime.checkpoint_dir
    root = on_claim(tmp_path, before.runtime.checkpoint_dir)
    saved = write_checkpoint(root, 7, before.to_yaml())
    assert find_resume_checkpoint(root, None, after.namespace, after.name) == saved


def test_a_checkpoint_another_job_wrote_into_this_jobs_directory_is_refused_in_one_line(tmp_path):
    theirs = build_trainer_config(job("other", "team-b"), "uid-x")
    write_checkpoint(tmp_path, 3, theirs.to_yaml())
    with pytest.raises(layout.CheckpointOfAnotherJob) as exc:
        find_resume_checkpoint(tmp_path, None, "ml", "flan")
    message = str(exc.value)
    assert "\n" not in message and "team-b/other" in message and "ml/flan" in message
