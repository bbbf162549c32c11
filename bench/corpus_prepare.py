"""The whole corpus preparation the trainer runs before its first step, end to end: load, clean,
deduplicate, score, split, format, tokenize and write the Arrow token cache
(`TrainingData.prepare`), on the bundled sample replicated to the size of the full RecipeNLG
(2,231,142 rows), with SmolLM2-135M's tokenizer (causal, prompt <= 64, recipe <= 448 tokens).

    nice -n 10 .venv/bin/python bench/corpus_prepare.py                  # 2,231,142 rows, ~1.5 GB CSV
    nice -n 10 .venv/bin/python bench/corpus_prepare.py --rows 200000    # a quick look
    nice -n 10 .venv/bin/python bench/corpus_prepare.py --stages         # where the CPU goes

`--stages` times each step of a worker's share in this one process on the 999 distinct sample
recipes, twice: cold (empty caches: scoring's ingredient caches, the tokenizer's piece cache),
as at the start of a corpus, then warm, as the replicated corpus sees them from its second copy
on; the real corpus, which repeats words and ingredient lines but not whole recipes, lies between.

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
    parser.add_argument("--stages", action="store_true", help="per-stage CPU on the sample, then stop")
    args = parser.parse_args()
    if args.stages:
        stage_costs(args.model)
        return
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
    if workers > 1:
        start = worker_start_cost(tokenizer, workers, children.ru_utime + children.ru_stime)
        per_recipe = (cpu + workers_cpu - start) / kept
        print(
            f"of which starting the workers: {start:.1f} CPU-s; the rest: {per_recipe * 1e6:.0f} us per recipe"
        )
    else:
        start = 0.0
    print(
        f"extrapolated, not measured: {FULL_CORPUS:,} recipes at that CPU cost on 2 idle cores: "
        f"{(per_recipe * FULL_CORPUS + start) / 2 / 60:.1f} min"
    )
    print(
        f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def worker_start_cost(tokenizer, workers: int, children_before: float) -> float:
    """CPU seconds the workers spend starting (imports, the tokenizer, BulkIds), from a pool
    like the trainer's given 20 rows: a fixed cost, not one per recipe."""
    from itertools import islice

    from recipe_trainer.data.loading import iter_raw_rows
    from recipe_trainer.data.rows import CacheRows
    from recipe_trainer.data.split import clean_and_score
    from recipe_trainer.data.tokenized_cache import TokenizationSettings

    finish = CacheRows(tokenizer, TokenizationSettings("causal", 64, 448, 0.05, None), "causal")
    started = time.process_time()
    recipes, _ = clean_and_score(islice(iter_raw_rows(SAMPLE), 20), workers, finish)
    for _ in recipes:
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime - children_before + time.process_time() - started


def stage_costs(model: str) -> None:
    """CPU per recipe of each step the workers run, cold then warm (module docstring)."""
    from recipe_trainer import quality
    from recipe_trainer.data import scoring
    from recipe_trainer.data.token_ids import BulkIds
    from recipe_trainer.data.tokenized_cache import TokenizationSettings
    from recipe_trainer.data.tokenizer import load_pretrained_tokenizer

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # as in the workers
    tokenizer = load_pretrained_tokenizer(str(model_directory(model)))
    settings = TokenizationSettings("causal", 64, 448, 0.05, None)
    for cached in (scoring._amount, quality.ingredient_names, quality.singular):
        cached.cache_clear()
    bulk = BulkIds(tokenizer)
    for run in ("cold", "warm"):
        costs = _one_pass(tokenizer, bulk, settings)
        recipes = costs.pop("recipes")
        print(f"{run} ({recipes:.0f} recipes), CPU us per recipe:")
        for name, seconds in costs.items():
            print(f"  {name:40s} {seconds * 1e6 / recipes:7.1f}")
        worker = sum(v for k, v in costs.items() if not k.startswith(" "))
        print(f"  {'all of the above but the comparison':40s} {worker * 1e6 / recipes:7.1f}")


def _one_pass(tokenizer, bulk, settings) -> dict[str, float]:
    """CPU seconds of each step over the sample (and "recipes": how many were kept)."""
    import pyarrow as pa
    from recipe_trainer.data import scoring
    from recipe_trainer.data.cleaning import Rejected, prepare_row
    from recipe_trainer.data.loading import iter_raw_rows
    from recipe_trainer.data.rows import ARROW_SCHEMA, example_columns
    from recipe_trainer.data.token_ids import token_ids, tokenize_pairs

    costs: dict[str, float] = {}

    def timed(name, work):
        started = time.process_time()
        result = work()
        costs[name] = time.process_time() - started
        return result

    rows = timed("read CSV rows", lambda: list(iter_raw_rows(SAMPLE)))
    prepared = timed("clean (prepare_row)", lambda: [prepare_row(r) for r in rows])
    recipes = [r for r in prepared if not isinstance(r, Rejected)]
    scored = timed("score", lambda: [scoring.score_recipe(r) for r in recipes])
    columns = timed("format (example_columns)", lambda: example_columns(scored, "causal"))
    sources, targets = columns["source"], columns["target"]
    ids = timed("tokenize (BulkIds)", lambda: tokenize_pairs(tokenizer, sources, targets, settings, bulk))
    timed("  the tokenizer itself, for comparison", lambda: token_ids(tokenizer, targets + sources))
    columns["source_ids"], columns["target_ids"] = ids
    timed("Arrow batch", lambda: pa.RecordBatch.from_pydict(columns, schema=ARROW_SCHEMA))
    costs["recipes"] = len(scored)
    return costs


if __name__ == "__main__":
    main()
