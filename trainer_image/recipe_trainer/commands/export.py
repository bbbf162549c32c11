"""`recipe-train export CHECKPOINT --out DIR [--merge]`: ship a trained model.

* Without `--merge`: the PEFT adapter alone (a few MB even for flan-t5-large), for serving many
  recipe variants on one base model; its adapter_config.json names the base it was trained on.
* With `--merge`: the adapter folded into the base weights (`merge_and_unload`) and saved as a
  standard Hugging Face model directory, loadable with `AutoModelForSeq2SeqLM` /
  `AutoModelForCausalLM.from_pretrained(DIR)` with no PEFT installed. Greedy generation from it
  gives the same text as the adapter checkpoint.

Both come with the tokenizer and a model card (README.md): base model, data, training settings and
the final metrics (trainer_state.json, best.json and the checkpoint's eval.json when present).
A checkpoint without an adapter (full fine-tuning) is exported as its full model either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recipe_trainer.checkpoint_layout import EVAL_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint directory or checkpoint root")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="directory to write (must be empty or new)"
    )
    parser.add_argument("--merge", action="store_true", help="merge the adapter into the base model weights")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out directory")


def final_metrics(loaded: Any) -> dict[str, Any]:
    """What the checkpoint knows about its quality: the trainer's last validation and best
    validation loss (trainer_state.json), and the numbers of `recipe-train eval` (eval.json)."""
    state = loaded.state
    metrics: dict[str, Any] = {}
    last = (state.get("progress") or {}).get("last_evaluation") or {}
    for name in ("validation_loss", "perplexity", "quality"):
        if isinstance(last.get(name), int | float):
            metrics[f"{name.replace('_', ' ')} (last validation)"] = last[name]
    if isinstance(state.get("best_metric"), int | float):
        metrics["best validation loss"] = state["best_metric"]
    evaluation = loaded.path / EVAL_FILE
    if evaluation.is_file():
        report = json.loads(evaluation.read_text())
        where = f"eval on {Path(report['data']).name} ({report['split']}, {len(report['samples'])} samples)"
        metrics.update({f"{name} [{where}]": value for name, value in report["metrics"].items()})
    return metrics


def model_card(loaded: Any, merged: bool, base: str | None) -> str:
    """README.md of the exported directory (Hugging Face model card with YAML front matter)."""
    seq2seq = loaded.task == "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
    adapter_only = loaded.is_adapter and not merged
    front = ["---", f"library_name: {'peft' if adapter_only else 'transformers'}"]
    if base and not Path(base).exists():  # a hub id
        front.append(f"base_model: {base}")
    front += [f"pipeline_tag: {'text2text-generation' if seq2seq else 'text-generation'}",
              "tags: [recipe-generation, chef-genius" + (", lora" if loaded.is_adapter else "") + "]", "---"]  # fmt: skip
    kind = (
        "LoRA adapter"
        if adapter_only
        else "merged LoRA model"
        if loaded.is_adapter
        else "fully fine-tuned model"
    )
    lines = [
        *front,
        "",
        f"# {loaded.config.name if loaded.config else loaded.path.name}: recipe generation ({kind})",
        "",
    ]
    lines += [
        f"- base model: `{base or 'none (full model)'}`",
        f"- checkpoint: `{loaded.path}` (step {loaded.step})",
    ]
    if loaded.config is not None:
        spec = loaded.config.spec
        lines += [
            f"- model init: {spec.model.init}, task: {loaded.task}",
            "",
            "## Data",
            "",
            f"- dataset: `{spec.dataset.path}` (format {spec.dataset.format})",
            f"- validation fraction: {spec.dataset.validation_fraction} (stable hash split), "
            f"max recipes: {spec.dataset.max_recipes or 'all'}",
            "- RecipeNLG: non-commercial research and education use only; recipes' copyright stays with their sources.",
            "",
            "## Training settings",
            "",
            "```yaml",
            _yaml({"training": spec.training.to_manifest(), "lora": spec.lora.to_manifest(),
                   "curriculum": {"enabled": spec.curriculum.enabled}, "augmentation": spec.augmentation.to_manifest()}),
            "```",
        ]  # fmt: skip
    metrics = final_metrics(loaded)
    lines += ["", "## Final metrics", ""]
    lines += [f"- {name}: {value:.4g}" for name, value in metrics.items()] or ["- none recorded"]
    load = (
        f'base = {auto_class}.from_pretrained("{base}")\nmodel = PeftModel.from_pretrained(base, "DIR")'
        if adapter_only
        else f'model = {auto_class}.from_pretrained("DIR")'
    )
    lines += [
        "", "## Use", "", "```python",
        f"from transformers import AutoTokenizer, {auto_class}" + ("\nfrom peft import PeftModel" if adapter_only else ""),
        'tokenizer = AutoTokenizer.from_pretrained("DIR")', load, "```", "",
        "Or with this project: `recipe-train generate CHECKPOINT --title \"...\"` on the training checkpoint.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False).rstrip()


def export(checkpoint: str, out: str | Path, merge: bool) -> Path:
    """Write the adapter (or merged/full model), tokenizer and model card to `out`."""
    from recipe_trainer.inference import load_checkpoint

    loaded = load_checkpoint(checkpoint, device="cpu")
    out = Path(out)
    base = loaded.base_model
    if base is not None and Path(base).is_dir():
        base = str(Path(base).resolve())  # the exported adapter must find its base from anywhere
    if loaded.is_adapter and not merge:
        loaded.model.peft_config["default"].base_model_name_or_path = base
        loaded.model.save_pretrained(out)
    else:
        model = loaded.model.merge_and_unload() if loaded.is_adapter else loaded.model
        model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    (out / "README.md").write_text(model_card(loaded, merged=merge, base=base))
    return out


def run(args: argparse.Namespace) -> int:
    from recipe_trainer.inference import quiet_loading

    quiet_loading()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"recipe-train export: {out} is not empty; choose a new --out or add --force", file=sys.stderr)
        return 1
    try:
        export(args.checkpoint, out, args.merge)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train export: {exc}", file=sys.stderr)
        return 1
    from recipe_trainer.training.checkpointing import directory_size  # the size the trainer reports

    what = "adapter" if (out / "adapter_config.json").is_file() else "model"
    print(f"exported the {what} to {out} ({directory_size(out) / 1e6:.2f} MB)")
    return 0
