"""The trainer's one entry to the data: clean recipes in, model-ready micro-batches out.

    data = TrainingData.prepare(spec, tokenizer, task, cache_dir, rank, world_size)
    for epoch in ...:
        for batch in data.batches():          # the rest of the current epoch, this rank's share
            data.set_progress(step / total_steps)
            outputs = forward_batch(engine, batch)  # recipe_trainer.training.forward
            loss = smoothed_ce(outputs.logits, batch["labels"]) ...  # divide by batch["num_target_tokens"]
        ...checkpoint: data.state_dict()  (restore with data.load_state_dict(state))

How a batch is made, and why it is exact on resume and identical in count on every rank:

1. The curriculum sampler walks a seeded permutation of all training recipes (one per epoch) and
   takes the next *window* of recipes eligible at the current progress.
2. Each recipe is augmented or not by a generator seeded with (seed, epoch, recipe index), and an
   augmented one is re-formatted and re-tokenized on the fly; others come from the Arrow cache.
3. The window is packed into rows (best-fit decreasing, `training.packing: true`) or, without
   packing, one recipe per row (the padded fallback for models that cannot pack).
4. Rows are sorted by length and cut into global batches of one optimizer step, `microBatchSize x
   world_size x gradient accumulation` rows (length grouping: little padding inside a micro-batch),
   whose order is then shuffled; micro-batch k of rank r is slice k x world_size + r of the step's
   rows, so every rank runs the same number of micro-batches. The shortest rows left over are
   carried into the next window; at the end of an epoch the last global batch is completed by
   repeating rows, so no recipe is dropped and no rank waits for another.
5. With `training.globalBatchSize` set, a step's rows do not depend on the number of ranks (only how
   they are sliced does), so a checkpoint resumes on another node count with the same recipes in
   the same steps. When the step's size changes (globalBatchSize unset), the window in progress is
   taken again from its start, so at most one window of recipes is seen twice.

Everything is a function of the state (sampler position, progress at the window start, carried
rows, micro-batches already produced from the window), so `state_dict()` after any micro-batch
and `load_state_dict()` in a fresh process continue with exactly the same batches.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_api.validation import gradient_accumulation_steps
from transformers import PreTrainedTokenizerBase

from .augmentation import augmented_pair_or_none
from .curriculum import Curriculum, CurriculumSampler, RecipeTraits
from .formatting import format_pair
from .loading import data_files
from .packing import Task, TokenizedExample, collate_rows, pack_best_fit_decreasing, row_capacity
from .rows import TEXT_COLUMNS, CacheRows, recipe_of
from .split import Finish, load_splits
from .token_ids import tokenize_pairs
from .tokenized_cache import (
    TokenizationSettings,
    build_or_load,
    cache_key,
    data_fingerprint,
    tokenizer_fingerprint,
)

WINDOW_GLOBAL_BATCHES = 16  # a window holds about this many global batches of recipes
MIN_WINDOW, MAX_WINDOW = 256, 16384  # recipes per window
ASSUMED_ROW_FILL = 0.97  # packed rows' fill on their longest side, for planning (measured 96-99%)


# ---------------------------------------------------------------- from clean recipes to cache rows


PARALLEL_CLEANING_MIN_BYTES = 64 * 1024 * 1024  # below this, starting worker processes costs more


def cleaning_workers(total_bytes: int, cpus: int | None) -> int:
    """Processes to clean and score with: every core for a big corpus (the full RecipeNLG takes
    minutes on one core, see docs/benchmarks.md), one for small data where spawning workers would
    cost more than it saves. The output is identical either way."""
    if total_bytes < PARALLEL_CLEANING_MIN_BYTES:
        return 1
    return max(1, min(cpus or 1, 8))


def recipe_splits(
    spec: RecipeTrainingJobSpec, finish: Finish | None = None
) -> tuple[dict[str, Iterator], dict]:
    """Load, clean, score and split the spec's dataset: ({"train": recipes, "validation": recipes},
    the cleaning report, complete once both splits are consumed). Streams. With `finish` (e.g.
    `rows.CacheRows`), (recipe, payload) pairs, the payload computed in the cleaning workers."""
    total_bytes = sum(f.stat().st_size for f in data_files(spec.dataset.path, spec.dataset.format))
    return load_splits(spec.dataset, workers=cleaning_workers(total_bytes, os.cpu_count()), finish=finish)


def tokenizer_training_corpus(spec: RecipeTrainingJobSpec, max_recipes: int | None = None) -> Iterator[str]:
    """Prompt and recipe texts of the training split, to train a scratch model's tokenizer on
    (`tokenizer.train_recipe_tokenizer`); validation recipes stay unseen."""
    splits, _ = recipe_splits(spec)
    for recipe in islice(splits["train"], max_recipes):
        yield from format_pair(recipe, "seq2seq")


# ---------------------------------------------------------------- the training data


@dataclass
class _WindowState:
    """Where the current window came from: enough to rebuild it exactly."""

    sampler: dict | None = None  # sampler state before the window was taken
    carry: list[list[int]] = field(default_factory=list)  # rows (recipe indices) carried into it
    emitted: int = 0  # micro-batches of this window already produced


class TrainingData:
    """Training and validation batches for one rank; see the module docstring."""

    def __init__(
        self,
        splits: DatasetDict,
        report: dict,
        spec: RecipeTrainingJobSpec,
        tokenizer: PreTrainedTokenizerBase,
        task: Task,
        rank: int = 0,
        world_size: int = 1,
        seed: int | None = None,
        decoder_start_token_id: int | None = None,
        packing: bool | None = None,
    ):
        if len(splits["train"]) == 0:
            raise ValueError(
                "no training recipes left after cleaning: check dataset.path and the data report"
            )
        self.spec, self.tokenizer, self.task = spec, tokenizer, task
        self.rank, self.world_size = rank, world_size
        self.seed = spec.training.seed if seed is None else seed
        # Seq2seq decoders restart each packed target with this id: T5 uses its pad id (the
        # default); pass the model config's decoder_start_token_id for other architectures.
        self.decoder_start_token_id = (
            tokenizer.pad_token_id if decoder_start_token_id is None else decoder_start_token_id
        )
        self.train: Dataset = splits["train"]
        self.validation: Dataset = splits["validation"]
        # Column views made once (select_columns copies the dataset's metadata on every call).
        self._train_texts = self.train.select_columns(TEXT_COLUMNS)
        self._train_ids = self.train.select_columns(["source_ids", "target_ids"])
        self._validation_ids = self.validation.select_columns(["source_ids", "target_ids"])
        self._cleaning_report = report
        self.packed = spec.training.packing if packing is None else packing
        self.capacity = row_capacity(task, spec.training.max_source_length, spec.training.max_target_length)
        self.settings = _settings(spec, task)
        self.micro_batch_size = spec.training.micro_batch_size
        self.rows_per_global_batch = self.micro_batch_size * world_size  # one micro-batch per rank
        self.accumulation = gradient_accumulation_steps(spec, world_size)
        self.rows_per_step = self.rows_per_global_batch * self.accumulation  # one optimizer step
        self.traits = RecipeTraits(
            n_ingredients=_column(self.train, "n_ingredients"),
            n_steps=_column(self.train, "n_steps"),
            quality=_column(self.train, "quality"),
        )
        self.curriculum = Curriculum(spec.curriculum)
        # Every rank samples the same global stream and keeps its slice of each global batch.
        self.sampler = CurriculumSampler(self.traits, self.curriculum, self.seed)
        self._sizes = _sizes(self.train, task)
        self._window = _WindowState()
        self._real_tokens = 0
        self._processed_tokens = 0

    @classmethod
    def prepare(
        cls,
        spec: RecipeTrainingJobSpec,
        tokenizer: PreTrainedTokenizerBase,
        task: Task,
        cache_dir: str | Path,
        rank: int = 0,
        world_size: int = 1,
        seed: int | None = None,
        decoder_start_token_id: int | None = None,
        packing: bool | None = None,
    ) -> TrainingData:
        """Load the tokenized cache for this data, tokenizer and settings, building it if missing
        (call on rank 0 first, then on the others after a barrier: building is atomic).

        `packing` None follows `training.packing`; pass False for a model that cannot pack
        (`packing.supports_packing(model.config)` is False) to get length-grouped padded batches.
        `seed` None is `training.seed`; `decoder_start_token_id` None is the pad id (T5)."""
        settings = _settings(spec, task)
        data = data_fingerprint(spec.dataset.path, spec.dataset.format)
        key = cache_key(data, tokenizer_fingerprint(tokenizer), settings)

        def make_examples():
            splits, report = recipe_splits(spec, finish=CacheRows(tokenizer, settings, task))
            rows = {name: (row for _, row in pairs) for name, pairs in splits.items()}  # tokenized already
            return rows, report

        splits, report = build_or_load(cache_dir, key, make_examples, tokenizer, settings)
        return cls(
            splits, report, spec, tokenizer, task, rank, world_size, seed, decoder_start_token_id, packing
        )

    # ---- progress and curriculum

    @property
    def epoch(self) -> int:
        """Epochs completed (the epoch `batches()` produces next)."""
        return self.sampler.epoch

    def set_progress(self, fraction: float) -> None:
        """Training progress in [0, 1] (step / total steps): drives the curriculum stage and the
        quality threshold of the recipes taken from now on (from the next window)."""
        self.sampler.set_progress(fraction)

    @property
    def curriculum_stage(self) -> int:
        return self.curriculum.stage_index(self.sampler.progress)

    @property
    def quality_threshold(self) -> float:
        return self.curriculum.quality_threshold(self.sampler.progress)

    # ---- training batches

    def batches(self) -> Iterator[dict[str, Any]]:
        """This rank's micro-batches for the rest of the current epoch; when it ends the epoch
        counter advances, so the next call starts the next epoch. Each batch holds the model inputs
        (`packing.collate_rows`: pass it to `training.forward.forward_batch`) and the statistics
        num_real_tokens, num_target_tokens, num_examples, num_padded_tokens (plain ints)."""
        while True:
            if self._window.sampler is None:
                self._window.sampler = self.sampler.state_dict()
            else:  # resumed, or re-entered mid-window: rebuild the window from where it was taken
                self.sampler.load_state_dict(self._window.sampler)
            indices = self.sampler.take(self._window_size())
            epoch_ends = self.sampler.epoch_finished
            carried = [i for row in self._window.carry for i in row]
            augmented = self._augmented(indices + carried)
            sizes = self._window_sizes(indices + carried, augmented)
            rows = self._window.carry + self._rows(indices, sizes)
            groups, carry = self._global_batches(
                rows, sizes, complete_last=epoch_ends, size=self.rows_per_step
            )
            for number in range(self._window.emitted, len(groups) * self.accumulation):
                group, k = groups[number // self.accumulation], number % self.accumulation
                start = (k * self.world_size + self.rank) * self.micro_batch_size
                batch = self._collate(
                    self._train_ids, group[start : start + self.micro_batch_size], augmented
                )
                self._window.emitted += 1
                self._real_tokens += batch["num_real_tokens"]
                self._processed_tokens += batch["num_padded_tokens"]
                yield batch
            self._window = _WindowState(carry=carry)
            if epoch_ends:
                self.sampler.next_epoch()
                return

    def _window_size(self) -> int:
        """Recipes per window: about WINDOW_GLOBAL_BATCHES optimizer steps' worth."""
        per_row = self.capacity[0] / max(1.0, float(self._sizes[:, 0].mean())) if self.packed else 1.0
        wanted = WINDOW_GLOBAL_BATCHES * self.rows_per_step * per_row
        return int(min(MAX_WINDOW, max(MIN_WINDOW, wanted)))

    def _augmented(self, indices: list[int]) -> dict[int, TokenizedExample]:
        """The recipes of the window that are augmented this epoch, re-formatted and tokenized.
        Whether and how a recipe is augmented depends only on (seed, epoch, recipe index)."""
        if self.spec.augmentation.probability <= 0 or not indices:
            return {}
        rows = self._train_texts[indices]
        pairs: dict[int, tuple[str, str]] = {}
        for position, index in enumerate(indices):
            recipe = recipe_of({name: rows[name][position] for name in TEXT_COLUMNS})
            pair = augmented_pair_or_none(
                recipe, self.task, self.spec.augmentation, self.seed, self.epoch, index
            )
            if pair is not None:
                pairs[index] = pair
        if not pairs:
            return {}
        sources, targets = tokenize_pairs(
            self.tokenizer, [p[0] for p in pairs.values()], [p[1] for p in pairs.values()], self.settings
        )
        return {i: TokenizedExample(s, t) for i, s, t in zip(pairs, sources, targets, strict=True)}

    def _window_sizes(self, indices: list[int], augmented: dict[int, TokenizedExample]) -> dict[int, tuple]:
        """Row sizes (TokenizedExample.sizes) of the window's recipes, as augmented."""
        return {
            i: augmented[i].sizes(self.task) if i in augmented else tuple(self._sizes[i]) for i in indices
        }

    def _rows(self, indices: list[int], sizes: dict[int, tuple]) -> list[list[int]]:
        """Rows of recipe indices for one window: packed (best-fit decreasing), or one recipe per
        row for the padded fallback."""
        if not self.packed:
            return [[i] for i in indices]
        packed = pack_best_fit_decreasing([sizes[i] for i in indices], self.capacity)
        return [[indices[p] for p in row] for row in packed]

    def _global_batches(
        self,
        rows: list[list[int]],
        sizes: dict[int, tuple],
        complete_last: bool,
        shuffle: bool = True,
        size: int | None = None,
    ):
        """Cut rows into global batches; returns (batches, in a seeded random order if `shuffle`, and
        rows carried to the next window). Rows are sorted by length first, so the rows of a micro-batch have
        similar lengths and little padding (length grouping); the shortest rows are carried over.
        With `complete_last`, a last partial batch is filled up with repeated rows instead.
        `size`: rows per batch (default one micro-batch per rank)."""
        if not rows:
            return [], []
        size = size or self.rows_per_global_batch

        def length(row: list[int]) -> int:
            return sum(sum(sizes[i]) for i in row)

        rows = sorted(rows, key=length, reverse=True)
        full = len(rows) // size * size
        groups = [rows[i : i + size] for i in range(0, full, size)]
        leftover = rows[full:]
        if shuffle:
            order = np.random.default_rng([self.seed, self.epoch, rows[0][0], len(rows)]).permutation(
                len(groups)
            )
            groups = [groups[o] for o in order]
        if complete_last and leftover:
            repeats = (rows * math.ceil(size / len(rows)))[: size - len(leftover)]
            groups.append(leftover + repeats)
            leftover = []
        return groups, leftover

    def _collate(
        self, token_ids: Dataset, rows: list[list[int]], augmented: dict[int, TokenizedExample] | None = None
    ) -> dict[str, Any]:
        """One micro-batch of `rows`: augmented recipes as given, the others read from `token_ids`
        (the source_ids/target_ids columns of the split)."""
        augmented = augmented or {}
        cached = sorted({i for row in rows for i in row if i not in augmented})
        fetched = token_ids[cached] if cached else {}
        examples = dict(augmented)
        for position, index in enumerate(cached):
            examples[index] = TokenizedExample(
                fetched["source_ids"][position], fetched["target_ids"][position]
            )
        return collate_rows(
            [[examples[i] for i in row] for row in rows],
            self.task,
            self.tokenizer.pad_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
            packed=self.packed,
        )

    # ---- validation

    def validation_batches(self, max_batches: int | None = None) -> Iterator[dict[str, Any]]:
        """This rank's validation micro-batches in a fixed order (no augmentation, no curriculum),
        at most `max_batches` (spec.validation.maxBatches when None); the same count on every rank."""
        limit = self.spec.validation.max_batches if max_batches is None else max_batches
        all_sizes = _sizes(self.validation, self.task)
        window, produced = self._window_size(), 0
        for start in range(0, len(self.validation), window):
            indices = list(range(start, min(len(self.validation), start + window)))
            sizes = {i: tuple(all_sizes[i]) for i in indices}
            groups, _ = self._global_batches(self._rows(indices, sizes), sizes, True, shuffle=False)
            for group in groups:
                if produced >= limit:
                    return
                mine = group[self.rank * self.micro_batch_size : (self.rank + 1) * self.micro_batch_size]
                yield self._collate(self._validation_ids, mine)
                produced += 1

    def validation_examples(self, n: int) -> list[tuple[str, str]]:
        """The first `n` validation recipes as (prompt, reference recipe) texts, for generation and
        quality scoring: the same recipes at every validation."""
        rows = self.validation.select_columns(["source", "target"])[: min(n, len(self.validation))]
        return list(zip(rows["source"], rows["target"], strict=True))

    # ---- planning, state and report

    def estimated_micro_batches_per_epoch(self, progress: float | None = None) -> int:
        """Micro-batches per rank in one epoch at `progress` (None: averaged over training, as the
        curriculum changes what is eligible), for planning total steps. A pure function of data and
        spec, so a resumed run plans the same total steps (and learning-rate schedule)."""
        points = [progress] if progress is not None else [(k + 0.5) / 10 for k in range(10)]
        efficiency = ASSUMED_ROW_FILL
        estimates = []
        for point in points:
            eligible = Curriculum(self.spec.curriculum).eligible(self.traits, point)
            if self.packed:
                rows = math.ceil(self._sizes[eligible, 0].sum() / (self.capacity[0] * efficiency))
            else:
                rows = int(eligible.sum())
            estimates.append(math.ceil(rows / self.rows_per_step) * self.accumulation)
        return max(1, round(sum(estimates) / len(estimates)))

    @property
    def packing_efficiency(self) -> float | None:
        """Real tokens / tokens processed (padding included) over the batches produced so far."""
        return self._real_tokens / self._processed_tokens if self._processed_tokens else None

    def state_dict(self) -> dict:
        """Position in the data, after the last micro-batch handed out (JSON-serialisable)."""
        window = self._window
        return {
            "sampler": self.sampler.state_dict(),
            "window": {"sampler": window.sampler, "carry": window.carry, "emitted": window.emitted},
            "real_tokens": self._real_tokens,
            "processed_tokens": self._processed_tokens,
            "rows_per_step": self.rows_per_step,
            "micro_batches_per_step": self.accumulation,
        }

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        window = state["window"]
        emitted = int(window["emitted"])
        rows, micro_batches = state.get("rows_per_step"), state.get("micro_batches_per_step")
        if rows is not None and (rows, micro_batches) != (self.rows_per_step, self.accumulation):
            if rows == self.rows_per_step and emitted % micro_batches == 0:  # same steps, other ranks
                emitted = emitted // micro_batches * self.accumulation
            else:  # another step size (module doc, 5.): take the window in progress again
                emitted = 0
        self._window = _WindowState(window["sampler"], [list(r) for r in window["carry"]], emitted)
        self._real_tokens = int(state["real_tokens"])
        self._processed_tokens = int(state["processed_tokens"])

    @functools.cached_property
    def summary(self) -> dict:
        """The data in a few numbers, for the checkpoint (trainer_state.json) and the exported
        model card: what the files were read as, rows read, kept, dropped and repaired by kind,
        and the split sizes. Made once (it looks into every data file)."""
        from .loading import describe_dataset

        try:
            described = describe_dataset(self.spec.dataset.path, self.spec.dataset.format)
        except (OSError, ValueError):  # the files moved since the cache was built
            described = f"format {self.spec.dataset.format}"
        cleaning = self._cleaning_report
        return {
            "path": self.spec.dataset.path,
            "format": described,
            "rows": cleaning["rows"],
            "kept": cleaning["kept"],
            "dropped": cleaning["dropped"],
            "normalised": cleaning.get("normalised", {}),
            "train_examples": len(self.train),
            "validation_examples": len(self.validation),
        }

    def report(self) -> dict:
        """Counts for logs and metrics: the cleaning report (drops by reason), split sizes, packing
        efficiency so far, curriculum fallbacks (times an empty stage had to be relaxed)."""
        return {
            "cleaning": self._cleaning_report,
            "train_examples": len(self.train),
            "validation_examples": len(self.validation),
            "packing": self.packed,
            "packing_efficiency": self.packing_efficiency,
            "curriculum_fallbacks": self.curriculum.fallbacks,
        }


def _column(dataset: Dataset, name: str) -> np.ndarray:
    return dataset.data.column(name).to_numpy()


def _sizes(dataset: Dataset, task: Task) -> np.ndarray:
    """[n, k] row sizes of every example (as TokenizedExample.sizes) without reading the ids."""
    source = pc.list_value_length(dataset.data.column("source_ids")).to_numpy().astype(np.int64)
    target = pc.list_value_length(dataset.data.column("target_ids")).to_numpy().astype(np.int64)
    if task == "seq2seq":
        return np.stack([target, source], axis=1)
    return (source + target)[:, None]


def _settings(spec: RecipeTrainingJobSpec, task: Task) -> TokenizationSettings:
    return TokenizationSettings(
        task=task,
        max_source_length=spec.training.max_source_length,
        max_target_length=spec.training.max_target_length,
        validation_fraction=spec.dataset.validation_fraction,
        max_recipes=spec.dataset.max_recipes,
        data_format=spec.dataset.format,
    )
