"""Every rank resumes from the checkpoint rank 0 chose, whatever its own listing says (NFS
attribute caching can show two nodes different newest steps right after a restart)."""

from __future__ import annotations

import json

import pytest
from recipe_api.contract import checkpoint_step_dir
from recipe_trainer.checkpoint_layout import STATE_FILE
from recipe_trainer.training.checkpointing import agreed_checkpoint


def checkpoint(root, step):
    path = root / checkpoint_step_dir(step)
    path.mkdir(parents=True)
    (path / STATE_FILE).write_text(json.dumps({"step": step}))
    return path


def rank_zero_says(step):
    """The broadcast as a rank other than 0 sees it: rank 0's value, whatever this rank sent."""
    return lambda _mine: step


def test_a_rank_that_sees_a_newer_step_loads_rank_zeros_choice(tmp_path):
    older, newer = checkpoint(tmp_path, 100), checkpoint(tmp_path, 200)
    assert agreed_checkpoint(newer, tmp_path, 1, rank_zero_says(100)) == older


def test_a_rank_whose_listing_is_stale_loads_the_newer_step_rank_zero_chose(tmp_path):
    older = checkpoint(tmp_path, 100)
    newer = checkpoint(tmp_path, 200)  # this rank's cached listing did not show it yet
    assert agreed_checkpoint(older, tmp_path, 1, rank_zero_says(200)) == newer
    assert agreed_checkpoint(None, tmp_path, 1, rank_zero_says(200)) == newer


def test_rank_zero_starting_fresh_makes_every_rank_start_fresh(tmp_path):
    assert agreed_checkpoint(checkpoint(tmp_path, 100), tmp_path, 1, rank_zero_says(-1)) is None


def test_rank_zero_sends_its_own_step_and_keeps_its_choice(tmp_path):
    mine = checkpoint(tmp_path, 300)
    sent = []
    assert agreed_checkpoint(mine, tmp_path, 0, lambda value: sent.append(value) or value) == mine
    assert sent == [300]
    assert agreed_checkpoint(None, tmp_path, 0, lambda value: sent.append(value) or value) is None
    assert sent == [300, -1]


def test_a_rank_that_cannot_see_the_chosen_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="rank 3 cannot see .*step-00000200.*ReadWriteMany"):
        agreed_checkpoint(checkpoint(tmp_path, 100), tmp_path, 3, rank_zero_says(200))
