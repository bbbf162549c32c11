"""The generated set's diversity against the held-out references', with a 95% interval.

`recipe_trainer.set_diversity` says what is measured (unique_steps, self_bleu: per recipe, within
its set); here generated vs references is a paired bootstrap interval of the difference
(`bootstrap.paired_bootstrap`, generated minus references), prompt by prompt, for `eval` and
`compare`. The per-recipe values are taken within the whole set, not recomputed per resample: the
interval is for which prompts were drawn, given the set.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..set_diversity import DIVERSITY_METRICS, per_recipe_diversity
from .bootstrap import paired_bootstrap


def diversity_report(generated: Sequence[str], references: Sequence[str], seed: int = 0) -> dict[str, dict]:
    """Per metric: the references' mean (mean_a), the generated set's (mean_b), their difference
    and its 95% interval; generated[i] and references[i] answer the same prompt."""
    if len(generated) != len(references) or len(generated) < 2:
        raise ValueError(
            f"need >= 2 generated recipes and as many references (got {len(generated)}, {len(references)})"
        )
    ours, theirs = per_recipe_diversity(generated), per_recipe_diversity(references)
    return {
        name: paired_bootstrap(theirs[name], ours[name], seed=seed).to_json() for name in DIVERSITY_METRICS
    }


def diversity_lines(report: dict[str, dict]) -> list[str]:
    """One line per metric for a console or Markdown report."""
    return [
        f"{name}: generated {d['mean_b']:.3f}, references {d['mean_a']:.3f}, "
        f"difference {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        + (" *" if d["excludes_zero"] else "")
        for name, d in report.items()
    ]
