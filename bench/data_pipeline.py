"""Benchmark: recipes/s of load + clean + score + split + format, streamed, 1 and 2 processes.

    .venv/bin/python bench/data_pipeline.py              # 201 copies of the sample = 200,799 rows
    .venv/bin/python bench/data_pipeline.py --copies 20  # quick look

The bundled 999-row RecipeNLG sample is replicated into one CSV; copy k > 0 gets " (k)" appended
to every title, so the copies are distinct recipes to the deduplication (otherwise 99.5% of the
rows would be dropped as duplicates and the figure would be meaningless). Each stage is timed
cumulatively, as separate full passes over the file: load; load + clean; + score; + split and
seq2seq formatting (everything the trainer does before tokenization); then all of it again with
cleaning and scoring in 2 worker processes (`clean_and_score(rows, workers=2)`). Each row is
extrapolated to the full 2.2M-recipe RecipeNLG corpus at its measured rate. Wall time depends on
what else runs on the machine: the load average is printed, and CPU time of this process beside.
The replicated rows repeat the sample's ingredient lines, which scoring caches, so the first line
printed is the cold-cache CPU cost per recipe on the 999 distinct rows: the pessimistic bound.

Tokenization throughput and packing efficiency are measured by bench/data_tokenize_pack.py.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.formatting import format_pair
from recipe_trainer.data.loading import iter_raw_rows
from recipe_trainer.data.scoring import score_recipes
from recipe_trainer.data.split import clean_and_score, split_recipes

SAMPLE = Path(__file__).parents[1] / "examples" / "data" / "recipenlg_sample_999.csv"
FULL_CORPUS = 2_231_142  # recipes in the full RecipeNLG dataset


def replicate(target: Path, copies: int) -> int:
    """Write `copies` distinct copies of the sample to `target`; returns the row count."""
    with open(SAMPLE, newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        rows = list(reader)
    title = header.index("title")
    with open(target, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for k in range(copies):
            for cells in rows:
                if k:
                    cells = [*cells[:title], f"{cells[title]} ({k})", *cells[title + 1 :]]
                writer.writerow(cells)
    return copies * len(rows)


def stages(path: Path) -> dict[str, Callable[[], Iterator]]:
    """Each stage as a stream over the whole file, cumulative."""

    def load():
        return iter_raw_rows(path)

    def clean():
        return clean_recipes(load())[0]

    def score():
        return score_recipes(clean())

    def split_and_format(workers: int = 1):
        splits = split_recipes(clean_and_score(load(), workers)[0], 0.05)
        for side in ("train", "validation"):
            for recipe in splits[side]:
                yield format_pair(recipe, "seq2seq")

    return {
        "load (CSV rows)": load,
        "+ clean (NFKC, dedup, junk)": clean,
        "+ score (quality, difficulty)": score,
        "+ split + format (seq2seq pairs)": split_and_format,
        "all of it, 2 worker processes": lambda: split_and_format(workers=2),
    }


def _cold_microseconds_per_recipe() -> float:
    """CPU cost per row of the whole single-process pipeline on distinct recipes, before the
    ingredient-line caches of scoring have seen any (the replicated file repeats the sample's
    lines, so its rows run with warm caches: an optimistic figure for the real corpus)."""
    start = time.process_time()
    rows = sum(1 for _ in stages(SAMPLE)["+ split + format (seq2seq pairs)"]())
    return (time.process_time() - start) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=201, help="replicate the sample this many times")
    args = parser.parse_args()
    cold = _cold_microseconds_per_recipe()
    print(f"cold caches, the 999 distinct sample rows once, all stages: {cold:.0f} us CPU per recipe")
    print(f"  -> full corpus on one core at that cost: {FULL_CORPUS * cold / 1e6 / 60:.1f} min")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replicated.csv"
        rows = replicate(path, args.copies)
        size_mb = path.stat().st_size / 1e6
        print(f"{rows:,} rows ({size_mb:.0f} MB), Python {platform.python_version()}")
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average before: {load} on {os.cpu_count()} cores")
        print(
            "| stage (cumulative) | rows out | wall s | CPU s (this process) | recipes/s (wall) | full corpus |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, stream in stages(path).items():
            start, cpu = time.perf_counter(), time.process_time()
            produced = sum(1 for _ in stream())
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            rate = rows / seconds
            minutes = FULL_CORPUS / rate / 60
            print(f"| {name} | {produced:,} | {seconds:.1f} | {cpu:.1f} | {rate:,.0f} | {minutes:.1f} min |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mb:.0f} MB")
    print(f"full corpus = {FULL_CORPUS:,} recipes at the row's wall rate")


if __name__ == "__main__":
    main()
