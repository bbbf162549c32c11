"""`recipe-train data inspect PATH`: what training would make of a dataset, before training on it.

Runs the same loading, cleaning, scoring, split and formatting as the trainer and prints: rows
read, kept and dropped (by reason, with examples), the train/validation sizes, histograms of the
quality and difficulty scores, and a few formatted samples exactly as the model would see them.
A progress bar runs on inputs over a few megabytes. `--json` prints the summary for scripts.

The first line says which format the file was read as (`loading.detect_format`); a file in no
accepted format is refused in one line. When no row is kept the command exits 1, naming the
most common drop reason with an example row, so a script (or a newcomer) stops here and not in
the middle of a training launch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

BINS = 10
SHOW_PROGRESS_BYTES = 5_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    inspect = sub.add_parser(
        "inspect", help="counts, drop reasons, score histograms and samples of a dataset"
    )
    inspect.add_argument(
        "path", metavar="PATH", help="RecipeNLG CSV, JSON lines or Parquet file, or a directory of them"
    )
    inspect.add_argument("--format", default="auto", choices=["auto", "recipenlg-csv", "jsonl", "parquet"])
    inspect.add_argument("--samples", type=int, default=3, metavar="N", help="formatted samples to show")
    inspect.add_argument("--task", default="seq2seq", choices=["seq2seq", "causal"], help="pair form to show")
    inspect.add_argument(
        "--validation-fraction",
        type=float,
        default=0.05,
        help="held-out share (spec.dataset.validationFraction)",
    )
    inspect.add_argument(
        "--workers", type=int, default=1, help="processes that clean and score (large inputs)"
    )
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from recipe_trainer.data.cleaning import DropReport
    from recipe_trainer.data.loading import data_files, describe_dataset

    console = Console()
    try:
        if not 0.0 <= args.validation_fraction < 1.0:
            raise ValueError("--validation-fraction must be in [0, 1)")
        if args.samples < 0:
            raise ValueError("--samples must be 0 or more")
        total_bytes = sum(f.stat().st_size for f in data_files(args.path, args.format))
        described = describe_dataset(args.path, args.format)
        if not args.json:
            console.print(f"{args.path}: {described}", markup=False, highlight=False, soft_wrap=True)
        show_progress = not args.json and total_bytes > SHOW_PROGRESS_BYTES and sys.stderr.isatty()
        summary = _with_progress(args, total_bytes) if show_progress else inspect_dataset(args)
        summary = {"format": described, **summary}
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _render(console, summary)
        sys.stdout.flush()
    except (FileNotFoundError, ValueError) as exc:
        print(f"recipe-train data inspect: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... --json | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    report = summary["report"]
    if not report["kept"]:
        print(f"recipe-train data inspect: {DropReport.nothing_kept(report, args.path)}", file=sys.stderr)
        return 1
    return 0


def _with_progress(args: argparse.Namespace, total_bytes: int) -> dict[str, Any]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("reading", total=total_bytes)
        summary = inspect_dataset(args, on_row=lambda size: progress.advance(task, size))
        progress.update(task, completed=total_bytes)
    return summary


def inspect_dataset(args: argparse.Namespace, on_row=None) -> dict[str, Any]:
    """The summary `inspect` prints. `on_row(approximate_bytes)` is called for every raw row."""
    from recipe_trainer.data.formatting import format_pair
    from recipe_trainer.data.loading import iter_raw_rows
    from recipe_trainer.data.split import clean_and_score, split_of

    def rows():
        for row in iter_raw_rows(args.path, args.format):
            if on_row is not None:
                on_row(sum(len(str(value)) + 1 for value in row.fields.values()) or len(row.error))
            yield row

    recipes, report = clean_and_score(rows(), args.workers)
    quality, difficulty = [0] * BINS, [0] * BINS
    sizes = {"train": 0, "validation": 0}
    samples = []
    for recipe in recipes:
        quality[min(BINS - 1, int(recipe.quality * BINS))] += 1
        difficulty[min(BINS - 1, int(recipe.difficulty * BINS))] += 1
        sizes[split_of(recipe, args.validation_fraction)] += 1
        if len(samples) < args.samples:
            source, target = format_pair(recipe, args.task)
            samples.append(
                {"row": recipe.row, "quality": recipe.quality, "difficulty": recipe.difficulty}
                | {"source": source, "target": target}
            )
    return {
        "report": dict(report),
        "splits": sizes,
        "quality": quality,
        "difficulty": difficulty,
        "samples": samples,
    }


def _render(console, summary: dict[str, Any]) -> None:
    from rich.table import Table

    report = summary["report"]
    counts = Table(title="rows", show_header=False)
    for name, value in (
        ("read", report["rows"]),
        ("kept", report["kept"]),
        ("dropped", report["rows"] - report["kept"]),
        ("train", summary["splits"]["train"]),
        ("validation", summary["splits"]["validation"]),
    ):
        counts.add_row(name, f"{value:,}")
    console.print(counts)
    _print_counts(console, "dropped rows by reason", "reason", "rows", "examples (file:line)",
                  report["dropped"], report["examples"])  # fmt: skip
    _print_counts(console, "kept after normalising (loud punctuation, shouting, mojibake)", "kind", "recipes",
                  "examples (file:line: before -> after)", report.get("normalised") or {},
                  report.get("normalised_examples") or {})  # fmt: skip
    for name in ("quality", "difficulty") if report["kept"] else ():  # nothing to plot otherwise
        console.print(_histogram(name, summary[name]))
    for sample in summary["samples"]:
        console.rule(
            f"{sample['row']}  quality {sample['quality']:.2f}  difficulty {sample['difficulty']:.2f}"
        )
        console.print("[bold]source[/bold]")
        console.print(sample["source"], markup=False, highlight=False)
        console.print("[bold]target[/bold]")
        console.print(sample["target"], markup=False, highlight=False)


def _histogram(name: str, counts: list[int]):
    from rich.table import Table

    table = Table(title=f"{name} score", show_header=False, box=None)
    peak = max(counts) or 1
    for i, count in enumerate(counts):
        bar = "#" * round(40 * count / peak)
        table.add_row(f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}", f"{count:>8,}", bar)
    return table


def _print_counts(console, title: str, key: str, unit: str, examples_column: str, counts, examples) -> None:
    """One table of counted rows with their examples, most frequent first; nothing when empty."""
    if not counts:
        return
    from rich.table import Table  # rich is imported only when a report is printed

    table = Table(title=title)
    table.add_column(key)
    table.add_column(unit, justify="right")
    table.add_column(examples_column, overflow="fold")  # a long file:line wraps, never cut
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(name, f"{count:,}", "\n".join(examples.get(name, [])))
    console.print(table)
