"""`recipe-train score FILE`: the recipe score of every recipe in a file, one JSON line each.

The same function (`recipe_trainer.quality.recipe_quality`) scores model output at validation, in
`eval`, `compare` and the ablation, so a user can see how a recipe of theirs, or a file a model
wrote, scores there, and why (every sub-score is printed).

Input:
* CSV with RecipeNLG columns (title, ingredients, directions as JSON lists; NER optional): each
  row is written in the training target format and scored with the prompt the pipeline would
  give it; or CSV with one column `text` holding recipes in the target format.
* JSON lines: {"text": ...} or {"prompt": ..., "text": ...}.
Output: stdout, one JSON object per recipe ({"line": N, "overall": ..., sub-scores}); stderr, a
summary table (mean, median, min of each score) after the last. A line that cannot be scored gets
one error line naming it on stderr, the others are still scored, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path


class BadLine(Exception):
    """A line that cannot be scored; the message says which field is wrong and how to fix it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="CSV (RecipeNLG columns, or `text`) or JSON lines (.jsonl)")


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"recipe-train score: {args.file}: no such file", file=sys.stderr)
        return 2
    reader = _csv_recipes if args.file.suffix.lower() == ".csv" else _jsonl_recipes
    try:
        columns, errors = _score_all(args.file, reader(args.file))
    except BrokenPipeError:  # `recipe-train score FILE | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout again at exit
        return 0
    print(summary_table(columns, errors), file=sys.stderr)
    return 1 if errors else 0


def _score_all(path: Path, items: Iterator[tuple[int, Item]]) -> tuple[dict[str, list[float]], int]:
    """Score every item, one JSON line each on stdout; bad lines are named on stderr and counted."""
    from ..quality import recipe_quality

    columns: dict[str, list[float]] = {}
    errors = 0
    for line, item in items:
        if isinstance(item, BadLine):
            print(f"recipe-train score: {path}:{line}: {item}", file=sys.stderr)
            errors += 1
            continue
        prompt, text = item
        scores = recipe_quality(text, prompt)
        print(json.dumps({"line": line, **scores}), flush=True)
        for name, value in scores.items():
            columns.setdefault(name, []).append(value)
    return columns, errors


def summary_table(columns: dict[str, list[float]], errors: int) -> str:
    n = len(columns.get("overall", []))
    lines = [
        f"{n} recipes scored, {errors} lines with errors",
        f"{'score':<22}{'mean':>8}{'median':>8}{'min':>8}",
    ]
    for name in sorted(columns, key=lambda name: (name != "overall", name)):
        values = columns[name]
        lines.append(
            f"{name:<22}{statistics.fmean(values):>8.3f}{statistics.median(values):>8.3f}{min(values):>8.3f}"
        )
    return "\n".join(lines)


Item = tuple[str | None, str] | BadLine
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by "surrogateescape"


def _jsonl_recipes(path: Path) -> Iterator[tuple[int, Item]]:
    with path.open("rb") as file:
        for number, raw_bytes in enumerate(file, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, BadLine(f"not UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8")
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, BadLine(f"not JSON ({exc.msg}); write one object per line")
                continue
            yield number, _pair(record)


def _pair(record: object) -> Item:
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return BadLine('needs a "text" string (and optionally "prompt"), e.g. {"text": "Title: ..."}')
    prompt = record.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        return BadLine('"prompt" must be a string')
    return prompt, record["text"]


def _csv_recipes(path: Path) -> Iterator[tuple[int, Item]]:
    from ..data.cleaning import parse_list
    from ..data.formatting import format_source, format_target
    from ..data.records import Recipe

    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as file:
        reader = csv.DictReader(file)
        header = set(reader.fieldnames or ())
        if "text" not in header and not {"title", "ingredients", "directions"} <= header:
            yield (
                1,
                BadLine("the header needs a `text` column, or RecipeNLG's title, ingredients, directions"),
            )
            return
        previous = reader.line_num  # the header's last line
        for row in reader:
            number, previous = previous + 1, reader.line_num  # where the record starts
            if any(_UNDECODED.search(value) for value in row.values() if isinstance(value, str)):
                yield number, BadLine("not UTF-8; save the file as UTF-8")
                continue
            if "text" in header:
                yield number, (None, row["text"] or "")
                continue
            try:
                ingredients = parse_list(row["ingredients"], "ingredients")
                directions = parse_list(row["directions"], "directions")
                ner = parse_list(row["NER"], "NER") if row.get("NER") else ()
            except Exception as exc:  # noqa: BLE001 - parse_list's reason names the column ("unparseable NER")
                yield number, BadLine(f'{exc}: write it as a JSON list of strings, e.g. ["1 c. sugar"]')
                continue
            recipe = Recipe(row["title"] or "", ingredients, directions, ner=ner)
            yield number, (format_source(recipe), format_target(recipe.title, ingredients, directions))
