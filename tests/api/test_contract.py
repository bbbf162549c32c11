"""Checkpoint directory names: the trainer writes them, resume and the operator read them back."""

from __future__ import annotations

import pytest
from recipe_api.contract import checkpoint_step_dir, checkpoint_step_of


@pytest.mark.parametrize("step", [0, 7, 120, 99_999_999])
def test_step_directory_names_round_trip(step):
    assert checkpoint_step_of(checkpoint_step_dir(step)) == step


@pytest.mark.parametrize("name", [".tmp-step-00000120", "step-120", "step-0000012x", "best.json", "step-"])
def test_other_names_are_not_checkpoints(name):
    assert checkpoint_step_of(name) is None
