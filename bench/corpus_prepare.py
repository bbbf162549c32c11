"""The whole corpus preparation the trainer runs before its first step, end to end: load, clean,
deduplicate, score, split, format, tokenize and write the Arrow token cache
(`TrainingData.prepare`), on the bundled sample replicated to the size of the full RecipeNLG
(2,231,142 rows), with SmolLM2-135M's tokenizer (causal, prompt <= 64, recipe <= 448 tokens).

    nice -n 10 .venv/bin/python bench/corpus_prepare.py                  # 2,231,142 rows, ~1.5 GB CSV
    nice -n 10 .venv/bin/python bench/corpus_prepare.py --rows 200000    # a quick look

The CSV is generated into a temporary directory (copy k > 0 of the sample gets " (k)" on its
titles, so copies are distinct recipes to deduplication: bench/data_pipeline.replicate) and
removed afterwards. Workers: what the trainer picks for a file of this size
(`pipeline.cleaning_workers`: every core, up to 8); they clean, score, format and tokenize
(`rows.CacheRows`: one Arrow batch per chunk and split back), this
process reads, deduplicates, splits and writes. Reported: wall time, CPU time of this process
and of the workers, and the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_pipeline import FULL_CORPUS, SAMPLE, replicate  # noqa: E402
from throughput_harness import SMOLLM2, model_directory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_CORPUS)
    parser.add_argument("--model", default=SMOLLM2, help="whose tokenizer")
    args = parser.parse_args()
    from recipe_api.v1alpha1 import RecipeTrainingJobSpec
    from recipe_trainer.data.loading import data_files
    from recipe_trainer.data.pipeline import TrainingData, cleaning_workers
    from recipe_trainer.data.tokenizer import load_pretrained_tokenizer

    tokenizer = load_pretrained_tokenizer(str(model_directory(args.model)))
    sample_rows = sum(1 for _ in SAMPLE.open()) - 1  # the sample has one line per row
    copies = -(-args.rows // sample_rows)
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        csv_path = Path(tmp) / "recipenlg-replicated.csv"
        started = time.perf_counter()
        rows = replicate(csv_path, copies)
        print(
            f"generated {rows:,} rows ({csv_path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f} s"
        )
        spec = RecipeTrainingJobSpec.model_validate(
            {
                "model": {"name": str(model_directory(args.model)), "task": "causal"},
                "dataset": {"path": str(csv_path)},
                "training": {"maxSourceLength": 64, "maxTargetLength": 448},
            }
        )
        size = sum(f.stat().st_size for f in data_files(spec.dataset.path, spec.dataset.format))
        workers = cleaning_workers(size, os.cpu_count())
        load_before = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        data = TrainingData.prepare(spec, tokenizer, "causal", Path(tmp) / "cache")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()
        kept = len(data.train) + len(data.validation)
        tokens = sum(len(ids) for column in ("source_ids", "target_ids") for ids in data.train[column])
    print(f"{rows:,} rows -> {kept:,} recipes ({len(data.train):,} train), {tokens:,} training tokens")
    print(
        f"workers: {workers} on {os.cpu_count()} cores; load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
    )
    print(f"end to end: {wall:.0f} s wall ({wall / 60:.2f} min), {rows / wall:,.0f} rows/s")
    workers_cpu = children.ru_utime + children.ru_stime
    per_recipe = (cpu + workers_cpu) / kept
    print(f"CPU: {cpu:.0f} s this process, {workers_cpu:.0f} s workers: {per_recipe * 1e6:.0f} us per recipe")
    print(
        f"extrapolated, not measured: {FULL_CORPUS:,} recipes at that CPU cost on 2 idle cores: "
        f"{per_recipe * FULL_CORPUS / 2 / 60:.1f} min"
    )
    print(
        f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
