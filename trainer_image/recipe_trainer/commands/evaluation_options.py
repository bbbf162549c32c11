"""What `recipe-train eval` and `compare` share: the data options and evaluating behind a progress bar."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with `compare`: which data, how many samples, which seed."""
    parser.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="RecipeNLG CSV/JSONL file or directory (default: the checkpoint's spec.dataset.path)",
    )
    parser.add_argument("--samples", type=int, default=20, metavar="N", help="recipes to generate and score")
    parser.add_argument("--seed", type=int, default=0, help="seed that picks the sampled recipes")
    parser.add_argument(
        "--whole-file", action="store_true", help="evaluate on every recipe, not just the validation split"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="examples per forward pass for the loss")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="longest generated recipe (default: maxTargetLength)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")


def data_path_for(args: argparse.Namespace, loaded: Any) -> str:
    if args.data:
        return args.data
    if loaded.config is None:
        raise ValueError(f"{loaded.path}: no trainer config in the checkpoint; pass --data PATH")
    return loaded.config.spec.dataset.path


def evaluate_with_progress(loaded: Any, args: argparse.Namespace, label: str, spec: Any = None) -> Any:
    """Load the examples for `loaded` and evaluate it behind a rich progress bar.

    `spec` (default: the checkpoint's own) decides the split, so `compare` can put both
    checkpoints on exactly the same recipes."""
    from recipe_api.v1alpha1 import RecipeTrainingJobSpec
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from recipe_trainer.evaluation.checkpoint_eval import evaluate, load_examples, spec_for_data

    data = data_path_for(args, loaded)
    if not Path(data).exists():
        raise FileNotFoundError(f"{data}: no such data file or directory; pass --data PATH")
    base_spec = spec or (loaded.config.spec if loaded.config else None)
    if base_spec is None:
        base_spec = RecipeTrainingJobSpec.model_validate(
            {"model": {"name": "unknown"}, "dataset": {"path": data}}
        )
    split = "all" if args.whole_file else "validation"
    examples = load_examples(spec_for_data(base_spec, data), loaded.task, split)
    if not examples:
        raise ValueError(f"{data}: no recipes in the {split} split; try --whole-file")
    total = len(examples) + min(args.samples, len(examples))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(f"evaluating {label}", total=total)
        advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
        return evaluate(
            loaded,
            examples,
            data=data,
            split=split,
            samples=args.samples,
            seed=args.seed,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            advance=advance,
        )
