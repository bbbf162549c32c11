"""Augmentation varies the wording, never the recipe's facts, and repeats exactly after a resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from recipe_api.v1alpha1 import AugmentationSpec
from recipe_trainer.data.augmentation import (
    INSTRUCTION_TEMPLATES,
    TIPS,
    VERB_SYNONYMS,
    augment_pair,
    augmented_pair_or_none,
    sample_rng,
)
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.records import Recipe
from recipe_trainer.recipe_text import parse_recipe_text

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"
ALWAYS = AugmentationSpec(probability=1.0)


@pytest.fixture(scope="module")
def recipes(clean_sample) -> list[Recipe]:
    return clean_sample[:200]


def test_same_seed_epoch_and_index_give_the_same_sample_in_any_call_order(recipes):
    forward = [augmented_pair_or_none(r, "seq2seq", ALWAYS, 42, 3, i) for i, r in enumerate(recipes)]
    backward = [
        augmented_pair_or_none(r, "seq2seq", ALWAYS, 42, 3, i) for i, r in reversed(list(enumerate(recipes)))
    ]
    assert forward == backward[::-1]
    next_epoch = [augmented_pair_or_none(r, "seq2seq", ALWAYS, 42, 4, i) for i, r in enumerate(recipes)]
    assert sum(a != b for a, b in zip(forward, next_epoch, strict=True)) > len(recipes) // 2


def test_probability_decides_how_many_samples_are_augmented(recipes):
    spec = AugmentationSpec(probability=0.3)
    augmented = [augmented_pair_or_none(recipes[0], "seq2seq", spec, 7, 0, i) for i in range(1000)]
    assert 230 <= sum(a is not None for a in augmented) <= 370
    never = AugmentationSpec(probability=0.0)
    assert all(augmented_pair_or_none(recipes[0], "seq2seq", never, 7, 0, i) is None for i in range(100))


def test_recipe_facts_never_change(recipes):
    verbs = "|".join(sorted({*VERB_SYNONYMS, *VERB_SYNONYMS.values()}))
    for index, recipe in enumerate(recipes):
        source, target = augment_pair(recipe, "seq2seq", ALWAYS, sample_rng(1, 0, index))
        parsed = parse_recipe_text(target)
        assert recipe.title in source
        assert parsed.title == recipe.title and len(parsed.ingredients) == recipe.n_ingredients
        assert len(parsed.steps) == recipe.n_steps
        for step, original in zip(parsed.steps, recipe.directions, strict=True):
            # only known cooking verbs may differ, word for word
            assert re.sub(rf"\b({verbs})\b", "V", step, flags=re.I) == re.sub(
                rf"\b({verbs})\b", "V", original, flags=re.I
            )


def test_templates_verbs_and_tips_all_show_up_on_the_sample(recipes):
    sources, changed_targets = [], 0
    for index, recipe in enumerate(recipes):
        source, target = augment_pair(recipe, "seq2seq", ALWAYS, sample_rng(5, 0, index))
        sources.append(source)
        changed_targets += target != format_pair(recipe, "seq2seq")[1]
    openings = {t.split("{title}")[0] for t in INSTRUCTION_TEMPLATES}
    assert len(INSTRUCTION_TEMPLATES) >= 7
    assert all(any(s.startswith(opening) for s in sources) for opening in openings)
    assert any(tip in s for s in sources for tip in TIPS)
    assert changed_targets > len(recipes) // 4


def test_switches_off_leave_the_plain_pair(recipes):
    off = AugmentationSpec(probability=1.0, instructionTemplates=False, verbParaphrase=False, tips=False)
    for index, recipe in enumerate(recipes[:50]):
        assert augment_pair(recipe, "causal", off, sample_rng(0, 0, index)) == format_pair(recipe, "causal")


def test_tips_go_to_the_prompt_only():
    spec = AugmentationSpec(probability=1.0, instructionTemplates=False, verbParaphrase=False)
    recipe = Recipe("Toast", ("1 slice bread",), ("Toast the bread.",))
    results = [augment_pair(recipe, "causal", spec, sample_rng(0, 0, i)) for i in range(20)]
    tipped = [(s, t) for s, t in results if "Tip:" in s]
    assert tipped and all(s.endswith("\n") and "Tip:" not in t for s, t in tipped)
