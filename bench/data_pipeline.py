"""Benchmark: recipes/s of load + clean + score + split + format, streamed, on one core.

    .venv/bin/python bench/data_pipeline.py              # 201 copies of the sample = 200,799 rows
    .venv/bin/python bench/data_pipeline.py --copies 20  # quick look

The bundled 999-row RecipeNLG sample is replicated into one CSV; copy k > 0 gets " (k)" appended
to every title, so the copies are distinct recipes to the deduplication (otherwise 99.5% of the
rows would be dropped as duplicates and the figure would be meaningless). Each stage is timed
cumulatively, as separate full passes over the file: load; load + clean; + score; + split and
seq2seq formatting (everything the trainer does before tokenization). The last line extrapolates
to the full 2.2M-recipe RecipeNLG corpus at the measured rate.

Tokenization throughput and packing efficiency are measured by bench/data_tokenize_pack.py.
"""

from __future__ import annotations

import argparse
import csv
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
from recipe_trainer.data.split import split_recipes

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

    def split_and_format():
        splits = split_recipes(score(), 0.05)
        for side in ("train", "validation"):
            for recipe in splits[side]:
                yield format_pair(recipe, "seq2seq")

    return {
        "load (CSV rows)": load,
        "+ clean (NFKC, dedup, junk)": clean,
        "+ score (quality, difficulty)": score,
        "+ split + format (seq2seq pairs)": split_and_format,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=201, help="replicate the sample this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replicated.csv"
        rows = replicate(path, args.copies)
        print(
            f"{rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), Python {platform.python_version()}, one process"
        )
        print("| stage (cumulative) | rows out | seconds | recipes/s |")
        print("| --- | ---: | ---: | ---: |")
        rate = 0.0
        for name, stream in stages(path).items():
            start = time.perf_counter()
            produced = sum(1 for _ in stream())
            seconds = time.perf_counter() - start
            rate = rows / seconds
            print(f"| {name} | {produced:,} | {seconds:.1f} | {rate:,.0f} |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")
    print(
        f"full corpus ({FULL_CORPUS:,} recipes) at {rate:,.0f} recipes/s: {FULL_CORPUS / rate / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
