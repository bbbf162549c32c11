"""How much smaller is an exported LoRA adapter than the merged model? (docs/benchmarks.md)

    .venv/bin/python bench/adapter_size.py

Two figures:

* the quickstart model (examples/quickstart-cpu.yaml's scratch T5) with LoRA at the API defaults
  (r=16, alpha=32, targetModules auto = q,v): both exports are really written with
  `recipe_trainer.commands.export.export` and their weight files measured in bytes;
* flan-t5-large built from its config (d_model 1024, d_ff 2816, 24+24 layers, 16 heads, d_kv 64,
  vocab 32128, gated-gelu) on the meta device, so no memory is used: parameter counts only, with
  r=16 on q,v. Goal: adapter < 1% of the model.

Tiny models have relatively large adapters (the adapter grows with d_model x r, the model with
d_model^2 and the vocabulary), so only the flan-t5-large ratio says what a real deployment saves.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from recipe_api import load_jobs
from recipe_api.contract import checkpoint_step_dir
from recipe_api.trainer_config import TrainerConfig
from recipe_api.v1alpha1 import LoraSpec
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.commands.export import export
from recipe_trainer.data.tokenizer import special_token_ids, train_recipe_tokenizer
from recipe_trainer.model import lora_target_modules
from transformers import AutoConfig, AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart-cpu.yaml"
FLAN_T5_LARGE = T5Config(
    d_model=1024, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16, d_kv=64,
    vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
)  # fmt: skip
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.suffix in WEIGHT_SUFFIXES)


def with_lora(model: torch.nn.Module, lora: LoraSpec, model_type: str) -> tuple[Any, int, int]:
    """(PeftModel, base parameters, adapter parameters) of `model` with LoRA per `lora`."""
    base = sum(p.numel() for p in model.parameters())
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=lora_target_modules(lora, model_type))
    peft_model = get_peft_model(model, config)
    adapter = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    return peft_model, base, adapter


def quickstart_export_sizes(workdir: Path) -> dict:
    """Write the quickstart model as a LoRA checkpoint (layout of checkpoint_layout) and export it
    both ways; returns parameter counts and bytes of the weight files."""
    job = load_jobs(str(QUICKSTART))[0]
    spec = job.spec.model_copy(update={"lora": LoraSpec()})  # LoRA at the API defaults
    overrides = dict(spec.model.config)
    model_type = overrides.pop("model_type")
    tokenizer = train_recipe_tokenizer(
        ["a recipe"], vocab_size=overrides.get("vocab_size", 2000), kind="seq2seq"
    )
    config = AutoConfig.for_model(model_type, **{**overrides, **special_token_ids(tokenizer, "seq2seq")})
    config.vocab_size = overrides.get("vocab_size", config.vocab_size)  # the size a trained tokenizer has
    torch.manual_seed(0)
    root = workdir / "checkpoints"
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(root / layout.BASE_MODEL_DIR)
    model = AutoModelForSeq2SeqLM.from_pretrained(root / layout.BASE_MODEL_DIR)
    model, base_params, adapter_params = with_lora(model, spec.lora, model_type)
    checkpoint = root / checkpoint_step_dir(1)
    model.save_pretrained(checkpoint / layout.MODEL_DIR)
    tokenizer.save_pretrained(checkpoint / layout.TOKENIZER_DIR)
    trainer_config = TrainerConfig(
        name=job.metadata.name, spec=spec, runtime={"checkpoint_dir": str(root), "run_dir": str(workdir)}
    )
    (checkpoint / layout.CONFIG_FILE).write_text(trainer_config.to_yaml())
    (checkpoint / layout.STATE_FILE).write_text(json.dumps({"step": 1}))
    adapter_dir = export(str(checkpoint), workdir / "adapter", merge=False)
    merged_dir = export(str(checkpoint), workdir / "merged", merge=True)
    return {
        "base_params": base_params,
        "adapter_params": adapter_params,
        "adapter_bytes": weight_bytes(adapter_dir),
        "merged_bytes": weight_bytes(merged_dir),
        "r": spec.lora.r,
    }


def flan_t5_large_counts() -> dict:
    with torch.device("meta"):
        model = T5ForConditionalGeneration(FLAN_T5_LARGE)
        untied_lm_head = model.lm_head.weight.numel()
        _, base_params, adapter_params = with_lora(model, LoraSpec(r=16), "t5")
    # transformers 5 always ties T5's lm_head to the embeddings; the published flan-t5-large
    # checkpoint has its own lm_head, so its real size counts that matrix once more.
    return {"base_params": base_params, "published_params": base_params + untied_lm_head,
            "adapter_params": adapter_params, "r": 16}  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        quick = quickstart_export_sizes(Path(tmp))
    large = flan_t5_large_counts()
    print(
        "| model | LoRA | base parameters | adapter parameters | adapter / model (params) | adapter / merged (bytes) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    print(
        f"| quickstart tiny T5 (scratch) | r={quick['r']} on q,v | {quick['base_params']:,} | "
        f"{quick['adapter_params']:,} | {quick['adapter_params'] / quick['base_params']:.2%} | "
        f"{quick['adapter_bytes']:,} B / {quick['merged_bytes']:,} B = {quick['adapter_bytes'] / quick['merged_bytes']:.2%} |"
    )
    ratio = large["adapter_params"] / large["base_params"]
    print(
        f"| flan-t5-large (from config, meta device) | r={large['r']} on q,v | {large['base_params']:,} | "
        f"{large['adapter_params']:,} | {ratio:.2%} | fp32: {large['adapter_params'] * 4 / 1e6:.1f} MB / "
        f"{large['base_params'] * 4 / 1e6:.0f} MB |"
    )
    published = large["adapter_params"] / large["published_params"]
    print(
        f"\nflan-t5-large as published (its own lm_head): {large['published_params']:,} parameters, "
        f"adapter {published:.2%}"
    )
    print(
        f"flan-t5-large goal adapter < 1% of the model: {'met' if ratio < 0.01 else 'NOT met'} ({ratio:.3%})"
    )
    return 0 if ratio < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
