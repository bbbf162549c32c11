"""Seeded variants of a training pair: other prompt phrasings, verb synonyms, a cooking tip.

Why: the model should follow the request however it is phrased, and not overfit one wording of
the steps. Nothing here changes a recipe's facts: templates and tips touch the source (prompt)
only; verb paraphrases swap a cooking verb in the steps for one that means the same thing
("mix" <-> "combine"); titles, ingredients, amounts and step order never change.

Reproducible after resume: whether and how sample `index` is augmented in `epoch` depends only on
a generator seeded with (seed, epoch, index) - `sample_rng` - and on `spec.augmentation`, so a
resumed run augments exactly as the uninterrupted one would. Every draw comes from that generator,
in a fixed order. Already-built JSONL pairs are passed through unchanged (their wording is the
user's), and so is everything when `probability` is 0.
"""

from __future__ import annotations

import re

import numpy as np
from recipe_api.v1alpha1 import AugmentationSpec

from .formatting import DEFAULT_INSTRUCTION, Task, format_pair, format_target
from .records import Recipe

INSTRUCTION_TEMPLATES = (
    DEFAULT_INSTRUCTION,
    "How do I make {title}?",
    "Give me a recipe for {title}.",
    "I'd like to cook {title}. What are the ingredients and steps?",
    "Create a step-by-step recipe for {title}.",
    "Show me how to prepare {title}.",
    "Recipe request: {title}.",
    "Teach me to make {title} at home.",
    "What is a good way to make {title}?",
)
VERB_SYNONYMS = {
    "mix": "combine",
    "combine": "mix",
    "chop": "dice",
    "dice": "chop",
    "cook": "prepare",
    "beat": "whisk",
    "whisk": "beat",
    "place": "put",
    "put": "place",
    "chill": "refrigerate",
    "refrigerate": "chill",
    "toss": "mix",
    "blend": "mix",
}
TIPS = (
    "Tip: read the whole recipe before you start.",
    "Tip: taste and adjust the seasoning before serving.",
    "Tip: measure the ingredients before you begin.",
    "Tip: let the oven preheat fully.",
    "Tip: use fresh ingredients for the best flavor.",
    "Tip: keep the heat moderate so nothing burns.",
    "Tip: let baked goods cool before cutting.",
    "Tip: prepare all ingredients in advance.",
)
PARAPHRASE_PROBABILITY = 0.5  # per verb occurrence, when verbParaphrase is on
TIP_PROBABILITY = 0.5  # per augmented sample, when tips are on

_VERB = re.compile(r"\b(" + "|".join(VERB_SYNONYMS) + r")\b", re.IGNORECASE)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation in one epoch."""
    return np.random.default_rng([seed, epoch, index])


def augmented_pair_or_none(
    recipe: Recipe, task: Task, augmentation: AugmentationSpec, seed: int, epoch: int, index: int
) -> tuple[str, str] | None:
    """The augmented (source, target) of sample `index` in `epoch`, or None when it is not
    augmented this time (a draw below `augmentation.probability` augments)."""
    rng = sample_rng(seed, epoch, index)
    if augmentation.probability <= 0 or rng.random() >= augmentation.probability:
        return None
    return augment_pair(recipe, task, augmentation, rng)


def augment_pair(
    recipe: Recipe, task: Task, augmentation: AugmentationSpec, rng: np.random.Generator
) -> tuple[str, str]:
    """An augmented (source, target) of the recipe, every choice drawn from `rng`."""
    if recipe.pair is not None:
        return format_pair(recipe, task)
    instruction = DEFAULT_INSTRUCTION
    if augmentation.instruction_templates:
        instruction = INSTRUCTION_TEMPLATES[int(rng.integers(len(INSTRUCTION_TEMPLATES)))]
    source, target = format_pair(recipe, task, instruction)
    if augmentation.verb_paraphrase:
        steps = [paraphrase_verbs(step, rng) for step in recipe.directions]
        target = format_target(recipe.title, recipe.ingredients, steps)
    if augmentation.tips and rng.random() < TIP_PROBABILITY:
        tip = TIPS[int(rng.integers(len(TIPS)))]
        source = f"{source.rstrip()} {tip}" + ("\n" if task == "causal" else "")
    return source, target


def paraphrase_verbs(text: str, rng: np.random.Generator, probability: float = PARAPHRASE_PROBABILITY) -> str:
    """Each known cooking verb swapped for its synonym with `probability`, keeping capitals."""

    def swap(match: re.Match) -> str:
        word = match.group(0)
        if rng.random() >= probability:
            return word
        synonym = VERB_SYNONYMS[word.lower()]
        return synonym.capitalize() if word[0].isupper() else synonym

    return _VERB.sub(swap, text)
