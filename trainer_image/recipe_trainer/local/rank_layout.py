"""How local mode splits a CPU job into ranks: one rank using every core, or single-thread ranks.

Why: at LoRA sizes (a few thousand tokens of a ~100M model per step) torch's intra-op threads wait
on each other at every op, so one process with 2 threads gets less out of 2 cores than 2
single-thread processes: 1.15x more real tokens per second for the latter
(`bench/cpu_rank_layout.py`, docs/benchmarks.md). Only layouts that were measured are chosen
(`MEASURED_FASTER`); other core counts keep one rank using every core.

The job's training stays the same: the optimizer step keeps its sequences (the global batch),
split evenly over the ranks, so the layout changes the speed, not the result's recipe. Where the
step does not split evenly, one rank it is, and the reason says why. The split is written into
the resolved spec as `globalBatchSize` (accumulation is derived from it) and, where needed, a
smaller `microBatchSize`; `recipe-train local --processes N` overrides the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

# cores -> single-thread ranks measured faster than one rank with that many threads
MEASURED_FASTER = {2: 2}


@dataclass(frozen=True)
class CpuLayout:
    ranks: int
    micro_batch_size: int
    global_batch_size: int
    reason: str

    @property
    def threads(self) -> int:
        return 1 if self.ranks > 1 else 0  # 0: every core (the launcher divides the cores)


def cpu_layout(cpus: int, micro_batch_size: int, global_batch_size: int) -> CpuLayout:
    """The layout for `cpus` cores of a step of `global_batch_size` sequences in micro-batches of
    `micro_batch_size` (per rank): single-thread ranks where measured faster and the step splits."""
    ranks = MEASURED_FASTER.get(cpus, 1)
    if ranks == 1:
        return CpuLayout(1, micro_batch_size, global_batch_size, f"one rank on all {cpus} cores")
    if global_batch_size % ranks:
        return CpuLayout(
            1, micro_batch_size, global_batch_size,
            f"one rank on all {cpus} cores: a step of {global_batch_size} sequences does not split over {ranks} ranks",
        )  # fmt: skip
    per_rank = global_batch_size // ranks
    micro = (
        micro_batch_size if per_rank % micro_batch_size == 0 else _largest_divisor(per_rank, micro_batch_size)
    )
    return CpuLayout(
        ranks, micro, global_batch_size,
        f"{ranks} single-thread ranks (measured faster than one {cpus}-thread rank), "
        f"{per_rank} of the step's {global_batch_size} sequences each",
    )  # fmt: skip


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, at_most + 1) if n % d == 0)
