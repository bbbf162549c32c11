"""Benchmark: does cleaning in worker processes pay on the trainer's own path?

    .venv/bin/python bench/cleaning_workers.py            # 110 copies of the sample, about 71 MB

Writes the bundled sample replicated into one CSV (copy k gets " (k)" on every title, so copies are
distinct recipes), then times `load_splits(..., workers=N)` fully consumed, alternating one and two
processes twice, so a change in machine load shows up as disagreeing pairs. The trainer switches
to workers at `recipe_trainer.data.pipeline.PARALLEL_CLEANING_MIN_BYTES`.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from recipe_api.v1alpha1 import DatasetSpec
from recipe_trainer.data.split import load_splits

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "recipenlg_sample_999.csv"


def write_replicated(path: Path, copies: int) -> None:
    with SAMPLE.open(newline="") as source:
        rows = list(csv.reader(source))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(rows[0])
        for k in range(copies):
            for row in rows[1:]:
                writer.writerow([row[0], f"{row[1]} ({k})", *row[2:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=110)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replicated.csv"
        write_replicated(path, args.copies)
        print(
            f"{path.stat().st_size / 2**20:.1f} MB, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        for workers in (1, 2, 1, 2):
            started = time.perf_counter()
            splits, _ = load_splits(DatasetSpec(path=str(path)), workers=workers)
            count = sum(1 for _ in splits["train"]) + sum(1 for _ in splits["validation"])
            print(f"workers={workers}: {count} recipes in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
