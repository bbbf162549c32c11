"""Diversity of a set of generated recipes, against the held-out references' own.

Why: a per-recipe score cannot see a model that writes one template for every dish ("1. Mix all
ingredients together. 2. Bake at 350° for 20 minutes. 3. Serve hot." for a salad and a stew);
only a measure across the generated set can. Real recipes repeat each other too ("Serve hot."), so
the generated set is compared with the references of the same prompts, not with an absolute bar.

Per recipe, within its set (steps as `recipe_text.parse_recipe_text` finds them, lower-cased):

* unique_steps: the share of its steps that no other recipe of the set has (1.0: none shared);
* self_bleu: sentence BLEU (sacrebleu, 0-1) of its steps against every other recipe's steps as
  references (high: it reads like the others).

The set's value is the mean. Shared by validation (`set_diversity`: both means) and
`evaluation.diversity` (the paired bootstrap interval of the difference, for `eval` and `compare`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .recipe_text import parse_recipe_text

DIVERSITY_METRICS = ("unique_steps", "self_bleu")
_PUNCTUATION = re.compile(r"[^\w\s°]")


def _steps(text: str) -> list[str]:
    return [" ".join(_PUNCTUATION.sub(" ", step.lower()).split()) for step in parse_recipe_text(text).steps]


def per_recipe_diversity(texts: Sequence[str]) -> dict[str, list[float]]:
    """unique_steps and self_bleu of each text within the set (module docstring)."""
    import sacrebleu

    steps = [_steps(text) for text in texts]
    holders = Counter(step for recipe in steps for step in set(recipe))
    unique = [sum(holders[step] == 1 for step in recipe) / len(recipe) if recipe else 0.0 for recipe in steps]
    joined = [" ".join(recipe) for recipe in steps]
    self_bleu = []
    for i, hypothesis in enumerate(joined):
        others = [text for j, text in enumerate(joined) if j != i]
        self_bleu.append(
            sacrebleu.sentence_bleu(hypothesis, others).score / 100 if others and hypothesis else 0.0
        )
    return {"unique_steps": unique, "self_bleu": self_bleu}


def set_diversity(generated: Sequence[str], references: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per metric, the mean over the generated set and over the references (validation's view)."""
    ours, theirs = per_recipe_diversity(generated), per_recipe_diversity(references)
    return {
        name: {
            "generated": sum(ours[name]) / len(ours[name]),
            "references": sum(theirs[name]) / len(theirs[name]),
        }
        for name in DIVERSITY_METRICS
        if ours[name] and theirs[name]
    }
