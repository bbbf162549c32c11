"""One process with 2 threads, or 2 single-thread processes: which gets more LoRA training out
of this machine's 2 cores?

Why: our trainer (and the careful Hugging Face setup it is compared with) runs one process that
uses every core through torch's intra-op threads. At these sizes (~2,000 tokens x 576 wide) the
threads wait on each other at every op: the same forward + backward costs more CPU with 2 threads
than with one. Data parallelism with one single-thread rank per core (each rank a share of the
batch, gradients all-reduced: 0.9M LoRA weights, negligible) avoids that. This measures the
ceiling of that change: the same batches, forward + backward of SmolLM2-135M with LoRA r=16 on
q/v (`forward.batch_loss`, the trainer's path), timed (a) in this process with 2 threads, then
(b) in 2 child processes with 1 thread each, running at once, each on all the batches.

    .venv/bin/python bench/cpu_rank_layout.py [--rows 4] [--batches 3]

Real tokens per wall second of (a) and of (b) (both processes together) are the figures; run
it on a quiet machine, since (b) needs both cores to itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed_share(rows: int, batches: int, threads: int) -> dict:
    """Forward + backward of every batch with `threads` intra-op threads (after one untimed
    warm-up batch): real tokens, wall and CPU seconds."""
    import torch

    torch.set_num_threads(threads)
    from forward_paths import lora_model_and_batches
    from recipe_trainer.training.forward import batch_loss, enable_segment_attention

    model, packed = lora_model_and_batches(rows, batches, lora_dropout=0.05)
    enable_segment_attention(model)

    def step(batch: dict) -> None:
        model.zero_grad()
        batch_loss(model, batch, "causal").loss.sum.backward()

    step(packed[0])
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in packed:
        step(batch)
    tokens = sum(int(b["num_real_tokens"]) for b in packed)
    return {"tokens": tokens, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--share", action="store_true", help=argparse.SUPPRESS)  # a child of (b)
    args = parser.parse_args()
    if args.share:
        print(json.dumps(timed_share(args.rows, args.batches, threads=1)))
        return
    load = os.getloadavg()[0]
    one = timed_share(args.rows, args.batches, threads=2)
    child = [sys.executable, __file__, "--share", "--rows", str(args.rows), "--batches", str(args.batches)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [subprocess.Popen(child, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    shares = [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]
    print(f"load average before {load:.1f}, after {os.getloadavg()[0]:.1f}")
    print("| layout | real tokens | wall s | real tokens/s | CPU s | real tokens per CPU-s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| 1 process x 2 threads | {one['tokens']} | {one['wall']:.1f} | {one['tokens'] / one['wall']:.1f} "
        f"| {one['cpu']:.1f} | {one['tokens'] / one['cpu']:.1f} |"
    )
    tokens, wall, cpu = (
        sum(s["tokens"] for s in shares),
        max(s["wall"] for s in shares),
        sum(s["cpu"] for s in shares),
    )
    print(
        f"| 2 processes x 1 thread, at once | {tokens} | {wall:.1f} | {tokens / wall:.1f} "
        f"| {cpu:.1f} | {tokens / cpu:.1f} |"
    )
    print(f"2 x 1 over 1 x 2, real tokens/s: {(tokens / wall) / (one['tokens'] / one['wall']):.2f}x")


if __name__ == "__main__":
    main()
