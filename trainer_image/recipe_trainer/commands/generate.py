"""`recipe-train generate CHECKPOINT --title "..."`: write one recipe with a trained model.

CHECKPOINT is a checkpoint directory or a checkpoint root (then the best checkpoint, else the
newest). The prompt is built by the data pipeline's formatting, so the model sees the same kind
of prompt it was trained on. Greedy by default (the same text every time); `--sample` draws with
temperature and top-p, repeatably for a given `--seed`. The recipe's quality score follows it.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="checkpoint directory or root, or a model name as in spec.model.name",
    )
    parser.add_argument("--title", required=True, help='recipe title, e.g. "Creamy Garlic Pasta"')
    parser.add_argument(
        "--ingredients",
        nargs="*",
        default=[],
        metavar="INGREDIENT",
        help='ingredients to use, e.g. --ingredients "2 c. flour" "1 egg" (when the prompt format uses them)',
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="longest recipe in tokens (default: maxTargetLength)"
    )
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (with --sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling draw (with --sample)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from recipe_trainer.inference import (
        generate_recipe,
        lengths_of,
        load_model_or_checkpoint,
        prompt_for,
        quiet_loading,
    )
    from recipe_trainer.quality import recipe_quality

    console = Console()
    quiet_loading()
    try:
        loaded = load_model_or_checkpoint(args.checkpoint, args.device)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train generate: {exc}", file=sys.stderr)
        return 1
    prompt = prompt_for(args.title, args.ingredients, loaded.task)
    max_source, max_target = lengths_of(loaded)
    recipe = generate_recipe(
        loaded.model,
        loaded.tokenizer,
        prompt,
        max_new_tokens=args.max_new_tokens or max_target,
        max_source_length=max_source,
        do_sample=args.sample,
        temperature=args.temperature,
        seed=args.seed,
    )
    quality = recipe_quality(recipe)
    console.print(f"[dim]checkpoint {loaded.path} (step {loaded.step})[/dim]")
    console.print(f"[bold]{args.title}[/bold]")
    console.print(recipe, markup=False, highlight=False)
    details = ", ".join(f"{k} {v:.2f}" for k, v in quality.items() if k != "overall")
    console.print(
        f"quality score: [bold]{quality['overall']:.3f}[/bold]" + (f" ({details})" if details else "")
    )
    return 0
