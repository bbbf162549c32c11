"""Benchmark: tokenization throughput and packing efficiency of the data pipeline.

    .venv/bin/python bench/data_tokenize_pack.py            # full run (200k rows), figures for docs/benchmarks.md
    .venv/bin/python bench/data_tokenize_pack.py --copies 5 # quick look

What it measures, on the bundled 999-recipe RecipeNLG sample replicated to >= 200k rows:

1. training a BPE tokenizer on the sample (seq2seq kind, as for a scratch T5);
2. tokens/s of batched fast tokenization alone (`tokenize_pairs`), and of building the whole Arrow
   cache (`build_or_load`: tokenization + Arrow write + save), then the time to open it again;
3. packing efficiency (real tokens / tokens processed) of the batches `TrainingData` hands the
   trainer at max length 512, for causal and seq2seq, against length-grouped padding, and the
   micro-batches per second the pipeline produces, also with augmentation re-tokenizing 30% of
   the recipes on the fly (the data side must never starve the GPU).

Cleaning and formatting are measured by bench/data_pipeline.py; here recipes are formatted once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_trainer.data.pipeline import TrainingData, recipe_splits
from recipe_trainer.data.rows import example_row
from recipe_trainer.data.tokenized_cache import TokenizationSettings, build_or_load, tokenize_pairs
from recipe_trainer.data.tokenizer import train_recipe_tokenizer

SAMPLE = Path(__file__).parents[1] / "examples" / "data" / "recipenlg_sample_999.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=201, help="replicate the sample this many times")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--micro-batch-size", type=int, default=12)
    parser.add_argument("--batches", type=int, default=200, help="micro-batches drawn per packing measure")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as each trainer rank runs (OMP_NUM_THREADS=1)

    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": round(os.getloadavg()[0], 1),  # other work on the machine skews figures
    }
    seq2seq_rows = sample_example_rows("seq2seq")
    rows = seq2seq_rows * args.copies
    results["rows"] = len(rows)

    started = time.perf_counter()
    tokenizer = train_recipe_tokenizer(
        (r["source"] + "\n" + r["target"] for r in seq2seq_rows), args.vocab_size, "seq2seq"
    )
    results["tokenizer_training_seconds"] = round(time.perf_counter() - started, 2)

    settings = TokenizationSettings("seq2seq", 256, args.max_length, 0.05, None)
    started, cpu_started = time.perf_counter(), time.process_time()
    tokens = 0
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        sources, targets = tokenize_pairs(
            tokenizer, [r["source"] for r in chunk], [r["target"] for r in chunk], settings
        )
        tokens += sum(map(len, sources)) + sum(map(len, targets))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    results["tokenize"] = {
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds),
        # CPU time of all the tokenizer's threads: stable however busy the machine is
        "tokens_per_cpu_second": round(tokens / cpu_seconds),
    }

    with tempfile.TemporaryDirectory() as cache_dir:
        started, cpu_started = time.perf_counter(), time.process_time()
        splits, _ = build_or_load(
            cache_dir,
            "bench",
            lambda: ({"train": iter(rows), "validation": iter([])}, {}),
            tokenizer,
            settings,
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        results["cache_build"] = {
            "seconds": round(seconds, 2),
            "rows_per_second": round(len(rows) / seconds),
            "tokens_per_second": round(tokens / seconds),
            "tokens_per_cpu_second": round(tokens / cpu_seconds),
        }
        started = time.perf_counter()
        splits, _ = build_or_load(cache_dir, "bench", None, tokenizer, settings)
        results["cache_reopen_seconds"] = round(time.perf_counter() - started, 3)
        results["packing"] = {"seq2seq": packing_figures(splits, tokenizer, "seq2seq", args)}

    causal_rows = sample_example_rows("causal") * args.copies
    causal_tokenizer = train_recipe_tokenizer(
        (r["source"] + "\n" + r["target"] for r in causal_rows[: len(seq2seq_rows)]),
        args.vocab_size,
        "causal",
    )
    with tempfile.TemporaryDirectory() as cache_dir:
        causal_settings = TokenizationSettings("causal", 64, args.max_length - 64, 0.05, None)
        splits, _ = build_or_load(
            cache_dir,
            "bench",
            lambda: ({"train": iter(causal_rows), "validation": iter([])}, {}),
            causal_tokenizer,
            causal_settings,
        )
        results["packing"]["causal"] = packing_figures(splits, causal_tokenizer, "causal", args)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(results, indent=2))


def sample_example_rows(task: str) -> list[dict]:
    """Every recipe of the sample that survives cleaning (both splits), formatted for `task`."""
    spec = RecipeTrainingJobSpec.model_validate(
        {"model": {"name": "bench"}, "dataset": {"path": str(SAMPLE)}}
    )
    splits, _ = recipe_splits(spec)
    return [example_row(recipe, task) for recipes in splits.values() for recipe in recipes]


def packing_figures(splits, tokenizer, task: str, args) -> dict:
    """Efficiency of the first `--batches` micro-batches, packed and length-grouped padded."""
    source_length = 64 if task == "causal" else 256
    target_length = args.max_length - 64 if task == "causal" else args.max_length
    figures = {}
    variants = {
        "packed": (True, 0.0),
        "padded_length_grouped": (False, 0.0),
        "packed_augmented_0.3": (True, 0.3),
    }
    for name, (packing, augmentation) in variants.items():
        spec = RecipeTrainingJobSpec.model_validate(
            {
                "model": {"name": "bench"},
                "dataset": {"path": str(SAMPLE)},
                "training": {
                    "microBatchSize": args.micro_batch_size,
                    "maxSourceLength": source_length,
                    "maxTargetLength": target_length,
                    "packing": packing,
                },
                "curriculum": {"enabled": False},
                "augmentation": {"probability": augmentation},
            }
        )
        data = TrainingData(splits, {}, spec, tokenizer, task)
        started, count = time.perf_counter(), 0
        for _ in data.batches():
            count += 1
            if count == args.batches:
                break
        seconds = time.perf_counter() - started
        figures[name] = {
            "efficiency": round(data.packing_efficiency, 4),
            "micro_batches_per_second": round(count / seconds, 1),
        }
    return figures


if __name__ == "__main__":
    main()
