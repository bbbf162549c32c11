"""The arithmetic of a run (`training.precision`), resolved once for the hardware it runs on.

`auto` picks:

* a GPU with bf16 (Ampere and newer): bf16 through DeepSpeed (bf16 weights, fp32 master copies in
  the optimizer); older GPUs fp32, never a silent fp16;
* a CPU with native bf16 matrix instructions (`avx512_bf16` or `amx_bf16` among its flags): bf16
  *autocast*. Weights, optimizer state and the loss stay fp32 (DeepSpeed's bf16 mode stays off,
  so saved LoRA adapters and checkpoints are fp32 and resume in either precision); matmuls run in
  bf16. Why: such a CPU multiplies bf16 matrices about twice as fast as fp32 (157 against 74
  GFLOP/s on 2 threads of an EPYC with AVX-512 BF16, issue 27);
* any other CPU: fp32. Without those instructions bf16 matmuls are emulated: 0.96 against 54
  GFLOP/s measured on this project's AVX2 machine, 50x slower.

Explicit `bf16` on CPU is the same autocast, even where it is emulated (the log says so); `fp16`
is GPU-only (the API rejects it on CPU). The decision is a pure function of the spec's choice and
what the hardware reports (`cpu_flags`, the one place the CPU is asked), so tests give it flags.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# x86 flags (Linux /proc/cpuinfo) of native bf16 matrix arithmetic that oneDNN uses.
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags; empty where the file is missing (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16_flags(flags: Iterable[str]) -> list[str]:
    """Which of the native bf16 flags the CPU has (sorted; empty when none)."""
    return sorted(set(flags) & set(NATIVE_BF16_CPU_FLAGS))


@dataclass(frozen=True)
class Precision:
    """The resolved choice: `name` is fp32, bf16 or fp16; `cpu_autocast` means bf16 on CPU by
    autocast around the forward passes (weights fp32); `reason` is the log line's explanation."""

    name: str
    cpu_autocast: bool
    reason: str

    @property
    def deepspeed_dtype(self) -> str | None:
        """bf16 or fp16 when DeepSpeed itself casts the model (GPU), else None (weights fp32)."""
        return None if self.name == "fp32" or self.cpu_autocast else self.name

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward passes run in: bf16 autocast on CPU, else nothing."""
        if not self.cpu_autocast:
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def describe(self) -> str:
        how = "autocast, fp32 weights" if self.cpu_autocast else "DeepSpeed" if self.deepspeed_dtype else ""
        return f"precision: {self.name}{f' ({how})' if how else ''}: {self.reason}"


def resolve_precision(wanted: str, on_gpu: bool, gpu_supports_bf16: bool, flags: Iterable[str]) -> Precision:
    """`training.precision` (auto, bf16, fp16, fp32) for this hardware."""
    native = native_bf16_flags(flags)
    cpu_has = (
        f"this CPU has native bf16 ({', '.join(native)})"
        if native
        else "this CPU has no native bf16 (no " + " or ".join(NATIVE_BF16_CPU_FLAGS) + ")"
    )
    if on_gpu:
        if wanted == "auto":
            wanted = "bf16" if gpu_supports_bf16 else "fp32"
            return Precision(
                wanted, False, f"auto: the GPU {'supports' if gpu_supports_bf16 else 'lacks'} bf16"
            )
        return Precision(wanted, False, "set in the spec")
    if wanted == "auto":
        if native:
            return Precision("bf16", True, f"auto: {cpu_has}")
        return Precision("fp32", False, f"auto: {cpu_has}, bf16 matmuls would be emulated and slower")
    if wanted == "bf16":
        slow = "" if native else " (emulated: expect it to be many times slower than fp32)"
        return Precision("bf16", True, f"set in the spec; {cpu_has}{slow}")
    return Precision(wanted, False, "set in the spec")


def for_this_machine(wanted: str, on_gpu: bool) -> Precision:
    """`resolve_precision` with what this process runs on: the GPU's bf16 support, or the CPU's flags."""
    import torch

    return resolve_precision(
        wanted, on_gpu, on_gpu and torch.cuda.is_bf16_supported(), () if on_gpu else cpu_flags()
    )


def resume_note(saved: str, now: Precision) -> str:
    """What a resume adds when the checkpoint was trained in another precision ("" when the same);
    `saved` is the checkpoint's `precision` field (checkpoints before it: fp32, or GPU bf16)."""
    return f", trained so far in {saved}, now {now.name}" if saved != now.name else ""
