"""`recipe-train eval CHECKPOINT --data PATH`: how good is this checkpoint?

Evaluates on the validation split the training run used (the checkpoint's validationFraction and
the data pipeline's stable hash), or on every recipe of the file with `--whole-file`: loss and
perplexity over real target tokens, then quality, ROUGE-L and BLEU of `--samples` generated
recipes drawn with `--seed`. Prints a table and writes the numbers, with every generated sample,
as JSON next to the checkpoint (`<checkpoint>/eval.json`, or `--output`). Same seed, same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoint_layout import EVAL_FILE
from .evaluation_options import add_data_arguments, evaluate_with_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="checkpoint directory or root, or a model name as in spec.model.name",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--output", default=None, metavar="FILE", help=f"JSON file (default: CHECKPOINT/{EVAL_FILE})"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from recipe_trainer.evaluation.comparison import format_metric
    from recipe_trainer.inference import load_model_or_checkpoint, quiet_loading

    console = Console()
    quiet_loading()
    try:
        loaded = load_model_or_checkpoint(args.checkpoint, args.device)
        result = evaluate_with_progress(loaded, args, label=loaded.path.name)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train eval: {exc}", file=sys.stderr)
        return 1
    console.print(f"{loaded.path} on {result.data} ({result.split} split, {result.examples} recipes)")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics().items():
        table.add_row(name, format_metric(name, value))
    console.print(table)
    from recipe_trainer.evaluation.diversity import diversity_lines

    for line in diversity_lines(result.diversity()):
        console.print(f"diversity {line}", highlight=False)
    beside = loaded.path if loaded.state or loaded.config else Path.cwd()  # a plain model: here
    output = Path(args.output) if args.output else beside / EVAL_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    console.print(f"wrote {output}")
    return 0
