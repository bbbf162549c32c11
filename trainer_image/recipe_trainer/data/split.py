"""Deterministic train/validation split, and the one call that prepares a dataset's splits.

Why a hash and not a shuffle: a recipe's side must not depend on the seed, the order of files, the
other recipes or how many ranks read them, so a resumed or re-run job - or a changed maxRecipes -
validates on the same recipes. A recipe goes to validation when the BLAKE2b hash of its
lower-cased title and ingredient lines, read as a number in [0, 1), is below
`dataset.validationFraction`. Already-built pairs hash their input and output instead.

    splits, report = load_splits(spec.dataset)   # {"train": iterator, "validation": iterator}, DropReport

Both sides stream from one pass over the data; a recipe read while the other side is being consumed
waits in a buffer (with the default fraction 0.05, reading "train" first buffers 5% of recipes).
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from recipe_api.v1alpha1 import DatasetSpec

from .cleaning import Admission, DropReport, RecipeCleaner, Rejected, duplicate_keys, prepare_row
from .loading import RawRow, iter_raw_rows
from .records import Recipe
from .scoring import score_recipe, score_recipes

SPLITS = ("train", "validation")
CHUNK_ROWS = 2000  # rows per task sent to a worker process
# A step run on each chunk's recipes after scoring, in the worker processes when there are any:
# recipes -> one payload per recipe (the trainer formats and tokenizes there: `rows.CacheRows`).
Finish = Callable[[list[Recipe]], list[Any]]


def split_position(recipe: Recipe | Admission) -> float:
    """Where the recipe falls in [0, 1): stable across runs, machines and Python versions."""
    if isinstance(recipe, Admission):  # computed where the recipe was cleaned
        return recipe.split_position
    if recipe.pair is not None:
        text = "\x1f".join(recipe.pair)
    else:
        text = "\x1f".join((recipe.title.lower(), *(i.lower() for i in recipe.ingredients)))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(recipe: Recipe | Admission, validation_fraction: float) -> str:
    """ "validation" or "train"."""
    return "validation" if split_position(recipe) < validation_fraction else "train"


def split_recipes(
    recipes: Iterable, validation_fraction: float, finished: bool = False
) -> dict[str, Iterator]:
    """{"train": ..., "validation": ...} iterators over one stream, consumable in any order.
    `finished`: the stream holds (recipe or `Admission`, payload) pairs, split by their first."""
    source = iter(recipes)
    buffers: dict[str, deque[Recipe]] = {name: deque() for name in SPLITS}

    def side(name: str) -> Iterator[Recipe]:
        while True:
            if buffers[name]:
                yield buffers[name].popleft()
                continue
            recipe = next(source, None)
            if recipe is None:
                return
            target = split_of(recipe[0] if finished else recipe, validation_fraction)
            if target == name:
                yield recipe
            else:
                buffers[target].append(recipe)

    return {name: side(name) for name in SPLITS}


class NoUsableData(ValueError):
    """The dataset yields no recipe; the message is `DropReport.nothing_kept`'s one line."""


def check_usable(dataset: DatasetSpec) -> None:
    """Read until the first row cleaning keeps, so that data of which nothing can be used fails in
    one line before anything slow starts (a DeepSpeed launch, a model load), not after it. Good
    data costs a few rows; `NoUsableData` otherwise (and `loading.UnknownFormat`, `FileNotFoundError`)."""
    cleaner = RecipeCleaner()
    for row in iter_raw_rows(dataset.path, dataset.format):
        if cleaner.clean(row) is not None:
            return
    raise NoUsableData(cleaner.report.nothing_kept(dataset.path))


def load_splits(
    dataset: DatasetSpec, workers: int = 1, finish: Finish | None = None
) -> tuple[dict[str, Iterator], DropReport]:
    """Load, clean, score, cap at `maxRecipes` and split the spec's dataset, streaming. The
    report (rows read, kept, dropped by reason) is complete once both splits are consumed.
    `workers` > 1 cleans and scores in that many processes (same recipes, same report).
    With `finish`, the splits hold (recipe, payload) pairs (see `Finish`); a recipe cleaned in a
    worker is then only its `cleaning.Admission` (the payload carries what is kept of it)."""
    recipes, report = clean_and_score(iter_raw_rows(dataset.path, dataset.format), workers, finish)
    if dataset.max_recipes is not None:
        recipes = islice(recipes, dataset.max_recipes)
    return split_recipes(recipes, dataset.validation_fraction, finished=finish is not None), report


def clean_and_score(
    rows: Iterable[RawRow], workers: int = 1, finish: Finish | None = None
) -> tuple[Iterator, DropReport]:
    """Clean, deduplicated, scored recipes in reading order (with `finish`: (recipe, payload)
    pairs, the recipe an `Admission` when it was cleaned in a worker), and the drop report they
    fill.

    With workers, this process reads rows and sends chunks to a pool that runs `prepare_row`,
    scoring and `finish`; results come back in order and are deduplicated here, so the output is
    the same as with one process (a duplicate's payload is computed and dropped). At most 2
    chunks per worker are in flight: memory stays bounded."""
    cleaner = RecipeCleaner()
    if workers <= 1:
        recipes = score_recipes(cleaner.clean_all(rows))
        return (recipes if finish is None else _finished_in_chunks(recipes, finish)), cleaner.report
    admitted = (
        (cleaner.admit(outcome), payload) for outcome, payload in _prepared_in_pool(rows, workers, finish)
    )
    kept = ((recipe, payload) for recipe, payload in admitted if recipe is not None)
    return (kept if finish is not None else (recipe for recipe, _ in kept)), cleaner.report


def _finished_in_chunks(recipes: Iterable[Recipe], finish: Finish) -> Iterator[tuple[Recipe, Any]]:
    source = iter(recipes)
    while chunk := list(islice(source, CHUNK_ROWS)):
        yield from zip(chunk, finish(chunk), strict=True)


def _prepared_in_pool(rows: Iterable[RawRow], workers: int, finish: Finish | None) -> Iterator[tuple]:
    # spawn, not fork: the trainer's process may hold threads (torch) that fork would copy mid-lock.
    # `finish` (a tokenizer inside) goes to each worker once, not with every chunk.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_install_finish, initargs=(finish,)) as pool:
        pending: deque = deque()
        source = iter(rows)
        while chunk := list(islice(source, CHUNK_ROWS)):
            pending.append(pool.apply_async(_prepare_and_score, (chunk,)))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


_worker_finish: Finish | None = None


def _install_finish(finish: Finish | None) -> None:
    global _worker_finish
    _worker_finish = finish


def _prepare_and_score(chunk: list[RawRow]) -> list[tuple[Recipe | Admission | Rejected, Any]]:
    """A worker's share: each row prepared and, when it is a recipe, scored and finished;
    (outcome, payload or None) in row order. With a finish step the recipe goes back as its
    `Admission` only: its payload holds what is kept of it."""
    outcomes = [prepare_row(row) for row in chunk]
    outcomes = [score_recipe(o) if isinstance(o, Recipe) else o for o in outcomes]
    if _worker_finish is None:
        return [(o, None) for o in outcomes]
    recipes = [o for o in outcomes if isinstance(o, Recipe)]
    payloads = iter(_worker_finish(recipes) if recipes else ())
    return [(_admission(o), next(payloads)) if isinstance(o, Recipe) else (o, None) for o in outcomes]


def _admission(recipe: Recipe) -> Admission:
    repairs = recipe.extra.get("normalised", {})
    return Admission(recipe.row, recipe.title, duplicate_keys(recipe), repairs, split_position(recipe))
