"""Exact resume rests on this: a restored RNG state draws exactly what the captured one would have,
from every generator a rank uses (python, numpy, torch)."""

from __future__ import annotations

import random

import numpy as np
import torch
from recipe_trainer.training.rng import capture_rng_state, restore_rng_state, seed_everything


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_a_restored_state_draws_what_the_captured_one_would_have():
    seed_everything(7)
    _draws()  # a run in progress
    state = capture_rng_state()
    expected = _draws()
    seed_everything(8)  # a fresh process after the crash, seeded as ranks are
    restore_rng_state(state)
    assert _draws() == expected


def test_the_same_seed_gives_the_same_draws_and_another_seed_others():
    seed_everything(42)
    first = _draws()
    seed_everything(42)
    assert _draws() == first
    seed_everything(43)
    assert _draws() != first
