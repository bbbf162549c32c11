"""The in-memory shape of one recipe, shared by every stage of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """A cleaned recipe. `row` points back to the source (file:line) for error reports."""

    title: str
    ingredients: tuple[str, ...]
    directions: tuple[str, ...]
    ner: tuple[str, ...] = ()
    source: str = ""
    link: str = ""
    row: str = ""
    quality: float = 0.0  # filled by scoring, in [0, 1]
    difficulty: float = 0.0  # filled by scoring, in [0, 1]
    # An already-built (input, output) pair from JSONL: formatting passes it through untouched;
    # title/ingredients/directions are then parsed from the output for scoring and curriculum.
    pair: tuple[str, str] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def n_ingredients(self) -> int:
        return len(self.ingredients)

    @property
    def n_steps(self) -> int:
        return len(self.directions)
