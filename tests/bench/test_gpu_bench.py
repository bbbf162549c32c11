"""bench/gpu.py cannot rot between GPU loans: its reduced form (tiny Llamas, CPU) runs every side,
every model and the table through the same code as the GPU run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_bench_smoke_measures_both_sides_of_both_models(tmp_path):
    out = tmp_path / "gpu.json"
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--smoke", "--json", str(out)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [m["model"] for m in result["models"]] == ["tiny-llama-a", "tiny-llama-b"]
    for model in result["models"]:
        assert model["loss_difference_fast_vs_plain"] < 1e-5, "the fast forward computes the same loss"
        assert set(model["sides"]) == {"ours", "hf-careful"}
        for side in model["sides"].values():
            assert side["steps"] >= 1 and side["tokens"] > 0
            assert side["mfu"] > 0 and side["tokens_per_second"] > 0
    table = done.stdout
    assert "| tiny-llama-b | hf-careful |" in table and "ours / HF" in table
