"""The trainer image's prebuilt kernels (DeepSpeed's ops, e.g. FusedAdam, the default GPU
optimizer) cover Ampere, Ada, Hopper and Blackwell, with PTX for what comes after: a GPU missing
from the list fails with "no kernel image is available" (UnsupportedGPU). Read from the
Dockerfile's build argument, which the image build passes to DeepSpeed as TORCH_CUDA_ARCH_LIST."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "trainer_image" / "Dockerfile"
GENERATIONS = {  # compute capability -> the GPUs that need it
    "8.0": "Ampere A100/A30",
    "8.6": "Ampere A10/A40/RTX 30",
    "8.9": "Ada L4/L40S/RTX 40",
    "9.0": "Hopper H100/H200/GH200",
    "10.0": "Blackwell B200/GB200",
    "12.0": "Blackwell RTX PRO 6000/RTX 50",
}


def build_arg(name: str) -> str | None:
    match = re.search(rf'^ARG {name}="?([^"\n]*)"?$', DOCKERFILE.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def test_the_kernel_list_covers_ampere_ada_hopper_and_blackwell_with_ptx():
    arch_list = build_arg("TORCH_CUDA_ARCH_LIST")
    assert arch_list, "trainer_image/Dockerfile has no ARG TORCH_CUDA_ARCH_LIST"
    entries = arch_list.replace(" ", ";").split(";")
    archs = [e.removesuffix("+PTX") for e in entries]
    missing = {cc: gpus for cc, gpus in GENERATIONS.items() if cc not in archs}
    assert not missing, f"TORCH_CUDA_ARCH_LIST lacks {missing}"
    newest = max(entries, key=lambda e: tuple(int(p) for p in e.removesuffix("+PTX").split(".")))
    assert newest.endswith("+PTX"), "the newest architecture needs +PTX so later GPUs can JIT the kernels"


def test_the_cuda_compiler_can_build_blackwell_kernels():
    """nvcc learnt sm_100 and sm_120 in CUDA 12.8. The compiler is PyPI's nvcc (ARG CUDA_NVCC_VERSION)
    or a CUDA devel base image's (ARG CUDA_IMAGE=nvidia/cuda:X.Y...)."""
    nvcc = build_arg("CUDA_NVCC_VERSION")
    image = build_arg("CUDA_IMAGE")
    found = re.match(r"(\d+)\.(\d+)", nvcc) if nvcc else re.search(r"nvidia/cuda:(\d+)\.(\d+)", image or "")
    assert found, "trainer_image/Dockerfile names no CUDA compiler version (CUDA_NVCC_VERSION or CUDA_IMAGE)"
    assert (int(found.group(1)), int(found.group(2))) >= (12, 8)
