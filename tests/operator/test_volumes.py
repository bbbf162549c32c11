"""Volumes follow the gang: a claim only one node can mount never serves a multi-node gang."""

from __future__ import annotations

import pytest
from recipe_api.validation import parse_job
from recipe_operator.builders import build_checkpoint_pvc, volume_mismatch


def job(nodes: int):
    return parse_job(
        {
            "apiVersion": "training.chefgenius.io/v1alpha1",
            "kind": "RecipeTrainingJob",
            "metadata": {"name": "flan", "namespace": "ml"},
            "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}, "resources": {"nodes": nodes}},
        }
    )


def claim(*modes: str) -> dict:
    return {"metadata": {"name": "c"}, "spec": {"accessModes": list(modes)}}


@pytest.mark.parametrize(
    ("nodes", "modes", "what", "fits"),
    [
        (1, ["ReadWriteOnce"], "checkpoint", True),
        (1, ["ReadWriteOncePod"], "checkpoint", True),
        (2, ["ReadWriteOnce"], "checkpoint", False),
        (2, ["ReadOnlyMany"], "checkpoint", False),  # the ranks write their shards
        (2, ["ReadWriteMany"], "checkpoint", True),
        (2, ["ReadWriteOnce", "ReadWriteMany"], "checkpoint", True),
        (2, ["ReadWriteOnce"], "dataset", False),
        (2, ["ReadOnlyMany"], "dataset", True),  # mounted read-only
        (4, [], "dataset", False),
    ],
)
def test_a_claim_fits_the_gang_only_when_every_node_can_mount_it(nodes, modes, what, fits):
    problem = volume_mismatch(job(nodes), claim(*modes), what)
    assert (problem is None) is fits
    if not fits:
        assert f"spec.{what}.volume.claimName" in problem and "c and its files are kept" in problem


def test_the_claim_the_operator_creates_always_fits_its_gang():
    for nodes in (1, 2, 8):
        created = build_checkpoint_pvc(job(nodes), "uid")
        assert volume_mismatch(job(nodes), created, "checkpoint") is None
