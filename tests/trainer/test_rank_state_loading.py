"""Issue 23, finding 8: a rank's state was loaded with `torch.load(weights_only=False)`, so
resuming from a checkpoint someone else wrote (a shared claim, --resume-from) ran their code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from recipe_api.v1alpha1 import GradientNoiseSpec
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.training.checkpointing import load_rank_state
from recipe_trainer.training.gradient_noise import GradientNoise
from recipe_trainer.training.rng import capture_rng_state, restore_rng_state, seed_everything


class CreatesAFile:
    """What an attacker's pickle does on load: here, only create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_rank_state_that_runs_code_when_unpickled_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = layout.rank_state_file(tmp_path, 0)
    path.parent.mkdir(parents=True)
    torch.save({"rng": CreatesAFile(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_rank_state(tmp_path, 0)
    assert not marker.exists()


def test_our_own_rank_state_still_loads_and_restores_the_same_draws(tmp_path):
    seed_everything(3)
    noise = GradientNoise(GradientNoiseSpec(enabled=True), seed=5)
    saved = {"rng": capture_rng_state(), "data": {"epoch": 1, "offset": 7}, "noise": noise.state_dict()}
    expected = (np.random.rand(3).tolist(), torch.rand(3).tolist())
    path = layout.rank_state_file(tmp_path, 0)
    path.parent.mkdir(parents=True)
    torch.save(saved, path)
    loaded = load_rank_state(tmp_path, 0)
    restore_rng_state(loaded["rng"])
    assert (np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected
    assert loaded["data"] == {"epoch": 1, "offset": 7}
