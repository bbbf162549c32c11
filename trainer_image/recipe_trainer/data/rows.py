"""The row format of the token cache, in one place: its Arrow features, how a recipe becomes a row
(`example_columns`, `example_row`), how a row becomes a recipe again (`recipe_of`), and the
corpus-scale row maker (`CacheRows`) that the cleaning workers run.

Why one module: the cache (`tokenized_cache`) writes these rows and the trainer (`pipeline`)
reads them; both import from here, and the cache's code hash covers this file, so neither has to
import the other.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import datasets
import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from .formatting import Task, format_pair
from .records import Recipe
from .split import split_of
from .token_ids import BulkIds, Lengths, tokenize_pairs

EXAMPLE_FEATURES = datasets.Features(
    {
        "title": datasets.Value("string"),
        "ingredients": datasets.Sequence(datasets.Value("string")),
        "directions": datasets.Sequence(datasets.Value("string")),
        "ner": datasets.Sequence(datasets.Value("string")),
        "is_pair": datasets.Value("bool"),  # an already-built (input, output) pair from JSONL
        "source": datasets.Value("string"),
        "target": datasets.Value("string"),
        "quality": datasets.Value("float32"),
        "n_ingredients": datasets.Value("int32"),
        "n_steps": datasets.Value("int32"),
        "source_ids": datasets.Sequence(datasets.Value("int32")),
        "target_ids": datasets.Sequence(datasets.Value("int32")),
    }
)
TEXT_COLUMNS = [name for name in EXAMPLE_FEATURES if not name.endswith("_ids")]
ARROW_SCHEMA = EXAMPLE_FEATURES.arrow_schema


def example_columns(recipes: list[Recipe], task: Task) -> dict[str, list]:
    """Recipes as the text columns of cache rows: the formatted pair, and what curriculum and
    augmentation need to know of each recipe."""
    pairs = [format_pair(recipe, task) for recipe in recipes]
    return {
        "title": [r.title for r in recipes],
        "ingredients": [list(r.ingredients) for r in recipes],
        "directions": [list(r.directions) for r in recipes],
        "ner": [list(r.ner) for r in recipes],
        "is_pair": [r.pair is not None for r in recipes],
        "source": [source for source, _ in pairs],
        "target": [target for _, target in pairs],
        "quality": [r.quality for r in recipes],
        "n_ingredients": [r.n_ingredients for r in recipes],
        "n_steps": [r.n_steps for r in recipes],
    }


def example_row(recipe: Recipe, task: Task) -> dict:
    """One recipe as a row of the token cache before tokenization (its text columns)."""
    return {name: values[0] for name, values in example_columns([recipe], task).items()}


def recipe_of(row: dict) -> Recipe:
    """The recipe back from a cache row (for augmentation); a built pair stays a pair."""
    return Recipe(
        title=row["title"],
        ingredients=tuple(row["ingredients"]),
        directions=tuple(row["directions"]),
        ner=tuple(row["ner"]),
        quality=float(row["quality"]),
        pair=(row["source"], row["target"]) if row["is_pair"] else None,
    )


class RowSettings(Lengths):
    """What `CacheRows` needs of `tokenized_cache.TokenizationSettings` (structurally: the cache
    imports this module)."""

    validation_fraction: float


class BatchRow(NamedTuple):
    """Row `index` of an Arrow batch of complete cache rows. What `CacheRows` hands back per
    recipe: the rows of a chunk travel between processes as one batch (Arrow buffers, pickled
    once for the whole chunk), not as thousands of Python dicts and int lists."""

    batch: pa.RecordBatch
    index: int


class CacheRows:
    """Recipes -> complete token-cache rows (`BatchRow`s), formatted and batch-tokenized. Runs in
    the cleaning workers (`split.Finish`), so a big corpus is formatted and tokenized on every
    core while the reading process only reads, deduplicates, splits and writes. A chunk's rows go
    into two batches by split (`split.split_of`), so the validation rows that wait in the split's
    buffer keep only validation batches alive. Picklable: it travels to each worker once; there
    the tokenizer's own thread pool is turned off (the workers already fill the cores)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: RowSettings, task: Task):
        self.tokenizer, self.settings, self.task = tokenizer, settings, task
        self._encode: BulkIds | None = None

    def __call__(self, recipes: list[Recipe]) -> list[BatchRow]:
        if self._encode is None:
            self._encode = BulkIds(self.tokenizer)
        sides = [split_of(recipe, self.settings.validation_fraction) for recipe in recipes]
        rows: list[BatchRow | None] = [None] * len(recipes)
        for side in set(sides):
            positions = [p for p, s in enumerate(sides) if s == side]
            batch = self.batch([recipes[p] for p in positions])
            for index, position in enumerate(positions):
                rows[position] = BatchRow(batch, index)
        return rows  # type: ignore[return-value]

    def batch(self, recipes: list[Recipe]) -> pa.RecordBatch:
        """The recipes' complete cache rows as one Arrow batch."""
        if self._encode is None:
            self._encode = BulkIds(self.tokenizer)
        columns = example_columns(recipes, self.task)
        columns["source_ids"], columns["target_ids"] = tokenize_pairs(
            self.tokenizer, columns["source"], columns["target"], self.settings, self._encode
        )
        return pa.RecordBatch.from_pydict(columns, schema=ARROW_SCHEMA)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_encode": None}  # rebuilt where it runs

    def __setstate__(self, state: dict) -> None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # unpickled in a worker process
        self.__dict__.update(state)
