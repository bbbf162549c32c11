"""The curriculum admits easy, good recipes first, reaches its end threshold, never runs dry, and
its sampler resumes mid-epoch in exactly the same order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recipe_api.v1alpha1 import CurriculumSpec
from recipe_trainer.data.curriculum import Curriculum, CurriculumSampler, RecipeTraits

SPEC = CurriculumSpec.model_validate(
    {
        "stages": [
            {"until": 0.3, "maxIngredients": 6, "maxSteps": 6},
            {"until": 0.6, "maxIngredients": 12, "maxSteps": 12},
            {"until": 1.0},
        ],
        "qualityThreshold": {"start": 0.5, "end": 0.75},
    }
)


def traits(count: int = 500, seed: int = 0) -> RecipeTraits:
    rng = np.random.default_rng(seed)
    return RecipeTraits(
        n_ingredients=rng.integers(1, 20, count),
        n_steps=rng.integers(1, 20, count),
        quality=rng.uniform(0.3, 1.0, count),
    )


def test_threshold_rises_linearly_and_reaches_end():
    curriculum = Curriculum(SPEC)
    assert curriculum.quality_threshold(0.0) == 0.5
    assert curriculum.quality_threshold(0.5) == pytest.approx(0.625)
    assert curriculum.quality_threshold(1.0) == 0.75
    assert curriculum.quality_threshold(1.3) == 0.75


def test_stages_follow_the_fractions_of_training():
    curriculum = Curriculum(SPEC)
    assert [curriculum.stage_index(p) for p in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == [0, 0, 1, 1, 2, 2]


def test_early_stage_admits_only_small_good_recipes_and_later_stages_more():
    data, curriculum = traits(), Curriculum(SPEC)
    early = curriculum.eligible(data, 0.1)
    assert early.any()
    assert (data.n_ingredients[early] <= 6).all() and (data.n_steps[early] <= 6).all()
    assert (data.quality[early] >= curriculum.quality_threshold(0.1)).all()
    middle = curriculum.eligible(data, 0.4)
    assert middle.sum() > early.sum() and data.n_ingredients[middle].max() > 6
    final = curriculum.eligible(data, 1.0)
    assert (final == (data.quality >= 0.75)).all()


def test_disabled_curriculum_admits_everything():
    data = traits()
    curriculum = Curriculum(CurriculumSpec(enabled=False))
    assert curriculum.eligible(data, 0.0).all()


def test_an_empty_stage_falls_back_to_the_easiest_recipes_and_counts_it():
    data = RecipeTraits(np.array([9, 8, 15]), np.array([9, 7, 4]), np.array([0.2, 0.3, 0.9]))
    curriculum = Curriculum(SPEC)
    mask = curriculum.eligible(data, 0.0)  # nothing has <= 6 ingredients and <= 6 steps
    assert mask.tolist() == [False, True, False]  # 8 + 7 is the smallest recipe
    assert curriculum.fallbacks == 1
    sampler = CurriculumSampler(data, curriculum, seed=1)
    assert list(sampler) == [1], "training goes on with the easiest recipe"


def test_each_epoch_yields_every_eligible_recipe_once_in_a_new_order():
    data = traits()
    sampler = CurriculumSampler(data, Curriculum(CurriculumSpec(enabled=False)), seed=7)
    first = list(sampler)
    sampler.next_epoch()
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(len(data)))
    assert first != second


def test_ranks_get_disjoint_equal_shares_of_the_same_stream():
    data, seen = traits(), []
    for rank in range(3):
        sampler = CurriculumSampler(data, Curriculum(SPEC), seed=7, rank=rank, world_size=3)
        sampler.set_progress(0.5)
        seen.append(list(sampler))
    assert len({len(s) for s in seen}) <= 2 and abs(len(seen[0]) - len(seen[2])) <= 1
    assert not set(seen[0]) & set(seen[1])
    assert sorted(sum(seen, [])) == np.flatnonzero(Curriculum(SPEC).eligible(data, 0.5)).tolist()


def test_resumed_sampler_continues_mid_epoch_with_the_same_order():
    data = traits()
    reference = CurriculumSampler(data, Curriculum(SPEC), seed=3, rank=1, world_size=2)
    reference.set_progress(0.45)
    expected = reference.take(10) + reference.take(10) + reference.take(25)

    interrupted = CurriculumSampler(data, Curriculum(SPEC), seed=3, rank=1, world_size=2)
    interrupted.set_progress(0.45)
    before = interrupted.take(10) + interrupted.take(10)
    saved = json.loads(json.dumps(interrupted.state_dict()))
    resumed = CurriculumSampler(data, Curriculum(SPEC), seed=3, rank=1, world_size=2)
    resumed.load_state_dict(saved)
    assert before + resumed.take(25) == expected
