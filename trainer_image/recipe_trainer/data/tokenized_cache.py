"""Tokenized recipes cached on disk as Arrow (Hugging Face `datasets`), memory-mapped on reuse.

Why: cleaning, scoring, formatting and tokenizing 2.2M recipes takes minutes; a restarted pod
must not pay that again. The cache directory is named by a key that changes whenever anything
that shaped the tokens changes:

* the data: every input file's path, size and modification time (cheap on a 2.3 GB corpus);
* the tokenizer: a hash of its full serialisation (vocabulary, merges, normaliser, specials);
* the settings: task, max lengths, validation fraction, max recipes, data format;
* the code: a hash of the modules that turn files into rows (loading, cleaning, scoring, split,
  formatting, recipe_text markers, the row format, tokenization and this module), so an upgraded trainer image never
  trains on rows an older cleaning or format produced.

Building is idempotent and atomic: a builder writes into a private temporary directory and renames
it to the key's name when complete, so readers never see half a cache and two ranks or pods
building at once both end with the same complete cache (the loser's copy is discarded).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from transformers import PreTrainedTokenizerBase

from .rows import EXAMPLE_FEATURES, TEXT_COLUMNS, BatchRow
from .token_ids import tokenize_pairs

TOKENIZE_BATCH = 2000
REPORT_FILE = "contents.json"  # written last: its presence marks a complete cache


@dataclass(frozen=True)
class TokenizationSettings:
    """Everything besides data and tokenizer that decides the cached tokens."""

    task: str
    max_source_length: int
    max_target_length: int
    validation_fraction: float
    max_recipes: int | None
    data_format: str = "auto"
    pipeline_version: str = field(default_factory=lambda: pipeline_code_version())


@cache
def pipeline_code_version() -> str:
    """Hash of the source of every module that decides what a cached row holds (none of them
    imports this module or the pipeline: the row format lives in `rows`)."""
    from .. import recipe_text
    from . import cleaning, formatting, loading, records, rows, scoring, split, token_ids

    digest = hashlib.sha256()
    for module in (loading, cleaning, scoring, split, formatting, records, recipe_text, rows, token_ids):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(path: str | Path, format: str = "auto") -> str:
    """Hash of the path, size and mtime of every data file the loader reads under `path` (a file,
    or a directory's CSV/JSONL files: a README added beside them changes nothing)."""
    from .loading import data_files

    digest = hashlib.sha256()
    for file in data_files(path, format):
        stat = file.stat()
        digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the tokenizer's full definition: two tokenizers with the same hash give the same ids."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError("the tokenized cache needs a fast tokenizer (transformers PreTrainedTokenizerFast)")
    digest = hashlib.sha256(backend.to_str().encode())
    digest.update(json.dumps(sorted(tokenizer.special_tokens_map.items()), default=str).encode())
    return digest.hexdigest()


def cache_key(data: str, tokenizer: str, settings: TokenizationSettings) -> str:
    """The cache directory's name for these data, tokenizer and settings fingerprints."""
    text = json.dumps({"data": data, "tokenizer": tokenizer, "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _tokenized_batches(
    examples: Iterable[dict | BatchRow], tokenizer: PreTrainedTokenizerBase, settings: TokenizationSettings
) -> Iterator[pa.Table | dict[str, list]]:
    """What to write, in order: runs of `BatchRow`s (complete rows made by `rows.CacheRows`) as
    Arrow tables taken from their batches, and example dicts as column batches of up to
    TOKENIZE_BATCH with their token ids added (unless they carry them already)."""
    examples = iter(examples)
    pending: list = []
    for example in itertools.chain(examples, [None]):
        if pending and (
            example is None
            or type(example) is not type(pending[0])
            or (isinstance(example, BatchRow) and example.batch is not pending[0].batch)
            or len(pending) >= TOKENIZE_BATCH
        ):
            yield _written(pending, tokenizer, settings)
            pending = []
        if example is not None:
            pending.append(example)


def _written(chunk: list, tokenizer, settings) -> pa.Table | dict[str, list]:
    if isinstance(chunk[0], BatchRow):
        # Zero-copy slices of consecutive rows (a duplicate dropped after its row was made leaves
        # a gap): `take` copies every column, string lists included, and cost 25 ms per chunk.
        batch, slices, start = chunk[0].batch, [], chunk[0].index
        for previous, row in itertools.pairwise(chunk):
            if row.index != previous.index + 1:
                slices.append(batch.slice(start, previous.index + 1 - start))
                start = row.index
        slices.append(batch.slice(start, chunk[-1].index + 1 - start))
        return pa.Table.from_batches(slices)
    if "source_ids" in chunk[0]:
        return {name: [example[name] for example in chunk] for name in EXAMPLE_FEATURES}
    columns = {name: [example[name] for example in chunk] for name in TEXT_COLUMNS}
    columns["source_ids"], columns["target_ids"] = tokenize_pairs(
        tokenizer, columns["source"], columns["target"], settings
    )
    return columns


def build_or_load(
    cache_root: str | Path,
    key: str,
    make_examples: Callable[[], tuple[dict[str, Iterable[dict]], dict]],
    tokenizer: PreTrainedTokenizerBase,
    settings: TokenizationSettings,
) -> tuple[datasets.DatasetDict, dict]:
    """The cached splits under `cache_root/key`, built first if missing.

    `make_examples()` is called only on a miss and returns ({split name: example dicts with the
    text columns of EXAMPLE_FEATURES, or `rows.BatchRow`s}, report dict); splits are consumed one after the other.
    Returns the memory-mapped splits and the report saved with them.
    """
    final = Path(cache_root) / key
    if not (final / REPORT_FILE).exists():
        _build(final, make_examples, tokenizer, settings)
    report = json.loads((final / REPORT_FILE).read_text())
    splits = {name: datasets.Dataset.from_file(str(final / f"{name}.arrow")) for name in report["splits"]}
    return datasets.DatasetDict(splits), report["report"]


def _build(final: Path, make_examples, tokenizer, settings) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        split_examples, report = make_examples()
        for name, examples in split_examples.items():
            with ArrowWriter(features=EXAMPLE_FEATURES, path=str(staging / f"{name}.arrow")) as writer:
                for part in _tokenized_batches(examples, tokenizer, settings):
                    if isinstance(part, pa.Table):
                        writer.write_table(part)
                    else:
                        writer.write_batch(part)
                writer.finalize()
        contents = {"splits": list(split_examples), "report": report}
        (staging / REPORT_FILE).write_text(json.dumps(contents, indent=2, sort_keys=True))
        try:
            staging.rename(final)
        except OSError:
            if not (final / REPORT_FILE).exists():  # not a concurrent builder's complete cache
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
