"""`recipe-train export CHECKPOINT --out DIR [--merge]` or `--gguf OUT.gguf [--quant f16|q8_0]`.

* Without `--merge`: the PEFT adapter alone (a few MB even for flan-t5-large), for serving many
  recipe variants on one base model; its adapter_config.json names the base as the job wrote it
  (`spec.model.name`: a hub id, a .gguf path or `package:...`), never this machine's conversion
  cache, so the adapter can travel; the card gives the resolved revision (hub commit or GGUF SHA-256).
* With `--merge`: the adapter folded into the base weights (`merge_and_unload`) and saved as a
  standard Hugging Face model directory, loadable with `AutoModelForSeq2SeqLM` /
  `AutoModelForCausalLM.from_pretrained(DIR)` with no PEFT installed. Greedy generation from it
  gives the same text as the adapter checkpoint. `--dtype bf16|fp16|fp32` sets the weights'
  precision; by default the base's own (its config's dtype), bf16 for a quantized GGUF base
  (dequantized to fp32 by the conversion, which would double the size for nothing).

Both come with the tokenizer and a model card (README.md): base model, the prompt format the model
was trained on with an example prompt, the training data's summary, training settings and the final
metrics (trainer_state.json, best.json and the checkpoint's eval.json when present).
A checkpoint without an adapter (full fine-tuning) is exported as its full model either way.
With `--gguf`: the merged model as one GGUF file for llama.cpp, Ollama or LM Studio
(`recipe_trainer.gguf_export`: Llama-family models).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recipe_trainer.checkpoint_layout import EVAL_FILE

QUALITY_DEFINITION = (
    "quality: the recipe score `recipe_trainer.quality.recipe_quality` (0-1, `recipe-train score` prints it): "
    "overall = format^3 x min(1, fluency x (ingredient coherence, instructions, completeness) / 0.8) x "
    "plausibility checks (quantities per unit and kind, ingredients listed and used, step order, "
    "temperatures and times, title agreement, intact, prompt adherence); the old score is the sub-score "
    "form; docs/benchmarks.md measures it against corrupted real recipes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint directory or checkpoint root")
    parser.add_argument("--out", metavar="DIR", help="directory to write (must be empty or new)")
    parser.add_argument("--gguf", metavar="OUT.gguf", help="write the merged model as one GGUF file instead")
    parser.add_argument(
        "--quant", choices=("f16", "q8_0"), default="f16", help="GGUF weight type (default f16)"
    )
    parser.add_argument("--merge", action="store_true", help="merge the adapter into the base model weights")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out directory")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="precision of the merged weights (default: the base's own; bf16 for a quantized GGUF base)",
    )


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # --dtype -> torch dtype name
EXAMPLE_TITLE, EXAMPLE_INGREDIENTS = "Lemon Bars", ("butter", "flour", "sugar", "eggs", "lemon juice")


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
    from recipe_trainer.model_source import is_gguf_name

    seq2seq = loaded.task == "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
    adapter_only = loaded.is_adapter and not merged
    front = ["---", f"library_name: {'peft' if adapter_only else 'transformers'}"]
    if base and not Path(base).exists() and not is_gguf_name(base):  # a hub id
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
        *([f"- resolved base: {revision}"] if (revision := resolved_revision(loaded)) else []),
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
            *data_summary_lines(loaded.state.get("data_summary")),
            "- RecipeNLG: non-commercial research and education use only; recipes' copyright stays with their sources.",
            "",
            *prompt_format_lines(loaded),
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
    lines += ["", QUALITY_DEFINITION]
    load = (
        f'{_load_base(base, auto_class)}\nmodel = PeftModel.from_pretrained(base, "DIR")'
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


def _load_base(base: str | None, auto_class: str) -> str:
    """Python that loads the base an adapter names; a GGUF base through transformers' gguf_file."""
    from recipe_trainer.model_source import PACKAGE_PREFIX, is_gguf_name

    if base is None or not is_gguf_name(base):
        return f'base = {auto_class}.from_pretrained("{base}")'
    if base.startswith(PACKAGE_PREFIX):
        package, _, file = base.removeprefix(PACKAGE_PREFIX).partition("/")
        folder = f'importlib.util.find_spec("{package}").submodule_search_locations[0]'
        return (
            f"import importlib.util  # the base is a GGUF file inside the installed package {package}\n"
            f'base = {auto_class}.from_pretrained({folder}, gguf_file="{file}")'
        )
    path = Path(base)
    return f'base = {auto_class}.from_pretrained("{path.parent}", gguf_file="{path.name}")'


def resolved_revision(loaded: Any) -> str | None:
    """What the base name resolved to here: a GGUF file's SHA-256 (`model_source.SOURCE_FILE` in the
    converted directory), or the hub commit the base was loaded from."""
    from recipe_trainer.model_source import SOURCE_FILE

    if loaded.base_model is None:
        return None
    source = Path(loaded.base_model) / SOURCE_FILE
    if source.is_file():
        return f"GGUF file sha256 {json.loads(source.read_text())['sha256']}"
    base = getattr(loaded.model, "get_base_model", lambda: loaded.model)()
    commit = getattr(base.config, "_commit_hash", None)
    return f"hub commit {commit}" if commit else None


def data_summary_lines(summary: dict | None) -> list[str]:
    """The training data as the trainer read it (`TrainingRecipe.data_summary`, in trainer_state.json)."""
    if not summary:
        return []
    lines = [
        f"- read as: {summary['format']}",
        f"- rows: {summary['rows']:,} read, {summary['kept']:,} kept; {summary['train_examples']:,} "
        f"training and {summary['validation_examples']:,} validation examples",
    ]
    if summary.get("dropped"):
        lines.append("- dropped: " + ", ".join(f"{reason} {n:,}" for reason, n in summary["dropped"].items()))
    if summary.get("normalised"):
        lines.append("- repaired: " + ", ".join(f"{kind} {n:,}" for kind, n in summary["normalised"].items()))
    return lines


def prompt_format_lines(loaded: Any) -> list[str]:
    """How to prompt the model: the template it was trained on and one example prompt, exactly as
    the trainer builds prompts (`inference.prompt_for`)."""
    from recipe_trainer.data.formatting import DEFAULT_INSTRUCTION
    from recipe_trainer.inference import prompt_for

    summary = loaded.state.get("data_summary") or {}
    example = prompt_for(EXAMPLE_TITLE, list(EXAMPLE_INGREDIENTS), loaded.task)
    lines = ["## Prompt format", ""]
    if "pairs" in summary.get("format", "") or "messages" in summary.get("format", ""):
        lines += ["Trained on the prompts of its data as written (pairs passed through; chat messages "
                  "before the answer joined by newlines, no chat template).", ""]  # fmt: skip
    else:
        template = DEFAULT_INSTRUCTION + " Ingredients: {ingredient names, comma-separated}."
        lines += [
            f"Prompt template: `{template}`" + (" followed by a newline." if loaded.task == "causal" else ""),
            "",
        ]
    lines += [
        "Example prompt:", "", "```text", example.rstrip("\n"), "```", "",
        "The model answers in the format it learned: `Title: ...`, `Ingredients:` with `- ` items, "
        "`Steps:` numbered `1. `.",
    ]  # fmt: skip
    return lines


def merge_dtype(loaded: Any, requested: str | None) -> str:
    """The torch dtype name of merged weights: `--dtype`, else bf16 for a GGUF base (quantized,
    dequantized to fp32 by the conversion), else the base's own config dtype (fp32 when unknown)."""
    from recipe_trainer.model_source import is_gguf_name

    if requested:
        return DTYPES[requested]
    config = loaded.config
    if config is not None and config.spec.model.init == "pretrained" and is_gguf_name(config.spec.model.name):
        return "bfloat16"
    base = getattr(loaded.model, "get_base_model", lambda: loaded.model)()
    own = getattr(base.config, "dtype", None) or getattr(base.config, "torch_dtype", None)
    return str(own).removeprefix("torch.") if own else "float32"


def travelling_base(loaded: Any) -> str | None:
    """The base an exported adapter names: `spec.model.name` as written for a pretrained hub id or
    GGUF model; a directory as an absolute path (found from anywhere on this machine)."""
    from recipe_trainer.model_source import is_gguf_name

    config = loaded.config
    if config is not None and config.spec.model.init == "pretrained":
        name = config.spec.model.name
        if is_gguf_name(name) or not Path(name).expanduser().is_dir():
            return name
    base = loaded.base_model
    if base is not None and Path(base).is_dir():
        return str(Path(base).resolve())
    return base


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False).rstrip()


def export(checkpoint: str, out: str | Path, merge: bool, dtype: str | None = None) -> Path:
    """Write the adapter (or merged/full model), tokenizer and model card to `out`."""
    import torch

    from recipe_trainer.inference import load_checkpoint

    loaded = load_checkpoint(checkpoint, device="cpu")
    out = Path(out)
    base = travelling_base(loaded)
    if loaded.is_adapter and not merge:
        loaded.model.peft_config["default"].base_model_name_or_path = base
        loaded.model.save_pretrained(out)
    else:
        model = loaded.model.merge_and_unload() if loaded.is_adapter else loaded.model
        model.to(getattr(torch, merge_dtype(loaded, dtype))).save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    (out / "README.md").write_text(model_card(loaded, merged=merge, base=base))
    return out


def run(args: argparse.Namespace) -> int:
    from recipe_trainer.inference import quiet_loading

    quiet_loading()
    if args.gguf:
        return _run_gguf(args)
    if not args.out:
        print("recipe-train export: give --out DIR (or --gguf OUT.gguf)", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"recipe-train export: {out} is not empty; choose a new --out or add --force", file=sys.stderr)
        return 1
    if args.dtype and not args.merge:
        print("recipe-train export: --dtype sets the merged weights' precision; add --merge", file=sys.stderr)
        return 1
    try:
        export(args.checkpoint, out, args.merge, args.dtype)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train export: {exc}", file=sys.stderr)
        return 1
    from recipe_trainer.training.checkpointing import directory_size  # the size the trainer reports

    what = "adapter" if (out / "adapter_config.json").is_file() else "model"
    print(f"exported the {what} to {out} ({directory_size(out) / 1e6:.2f} MB)")
    return 0


def _run_gguf(args: argparse.Namespace) -> int:
    from recipe_trainer.gguf_export import write_gguf
    from recipe_trainer.inference import load_checkpoint

    out = Path(args.gguf)
    if out.exists() and not args.force:
        print(f"recipe-train export: {out} exists; choose another --gguf or add --force", file=sys.stderr)
        return 1
    try:
        loaded = load_checkpoint(args.checkpoint, device="cpu")
        model = loaded.model.merge_and_unload() if loaded.is_adapter else loaded.model
        write_gguf(model, loaded.tokenizer, out, args.quant, name=loaded.config.name if loaded.config else "")
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train export: {exc}", file=sys.stderr)
        return 1
    print(f"exported the merged model to {out} (GGUF {args.quant}, {out.stat().st_size / 1e6:.2f} MB)")
    return 0
