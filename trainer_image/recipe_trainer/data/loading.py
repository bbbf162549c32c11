"""Stream raw rows out of recipe files, one at a time, whatever their state.

Why streaming: the full RecipeNLG corpus is 2.2M recipes (about 2.3 GB); no stage may hold a whole
file. Why "raw": loading only splits the file into rows and never judges them. A line that cannot
be read (broken CSV quoting, invalid JSON, a wrong number of columns) becomes a `RawRow` of kind
"malformed" with the reason, so the cleaning stage counts it and the run goes on.

Formats:
* RecipeNLG CSV: header `title, ingredients, directions, link, source, NER`, with or without the
  unnamed leading index column; list columns hold JSON strings (parsed later, by cleaning).
* JSONL: one object per line, either a recipe (`title`, `ingredients`, `directions`, optionally
  `NER`/`ner`, `link`, `source`) or an already-built pair (`input`, `output`), kind "pair", which
  formatting passes through untouched.
A path may be a file or a directory (its matching files, recursively, in sorted path order, so the
row order - and with it which of two duplicates is kept - never depends on the file system).
Files ending in `.gz` are read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RowKind = Literal["recipe", "pair", "malformed"]
Format = Literal["auto", "recipenlg-csv", "jsonl"]

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
RECIPE_COLUMNS = ("title", "ingredients", "directions", "link", "source", "NER")
REQUIRED_CSV_COLUMNS = ("title", "ingredients", "directions")
MAX_RECORD_LINES = 64  # RecipeNLG records are one line; a longer one is a broken quote

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # RecipeNLG has a few very long direction cells


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read. `fields` holds the raw values (CSV cells are strings, list columns still
    JSON text); `where` is "file:line" for reports; `error` says why a malformed row is malformed."""

    kind: RowKind
    where: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def iter_raw_rows(path: str | Path, format: Format = "auto") -> Iterator[RawRow]:
    """Every row of the file or directory at `path`, streamed in a stable order."""
    for file in data_files(path, format):
        file_format = format if format != "auto" else _format_of(file)
        reader = _csv_rows if file_format == "recipenlg-csv" else _jsonl_rows
        yield from reader(file)


def data_files(path: str | Path, format: Format = "auto") -> list[Path]:
    """The files `path` names: itself, or a directory's data files in sorted order."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"dataset.path: {root} does not exist; point it at a RecipeNLG CSV or JSONL")
    if root.is_file():
        return [root]
    suffixes = {"recipenlg-csv": CSV_SUFFIXES, "jsonl": JSONL_SUFFIXES}.get(
        format, CSV_SUFFIXES + JSONL_SUFFIXES
    )
    files = sorted(p for p in root.rglob("*") if p.is_file() and _plain_suffix(p) in suffixes)
    if not files:
        raise FileNotFoundError(
            f"dataset.path: {root} holds no {'/'.join(suffixes)} files; add data or fix the path"
        )
    return files


def _plain_suffix(path: Path) -> str:
    """The data suffix, looking through a trailing .gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _format_of(file: Path) -> Format:
    suffix = _plain_suffix(file)
    if suffix in CSV_SUFFIXES:
        return "recipenlg-csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise ValueError(
        f"dataset.format: cannot tell the format of {file}; set format to recipenlg-csv or jsonl"
    )


def _open_text(file: Path) -> io.TextIOBase:
    """Text stream; undecodable bytes become U+FFFD instead of stopping the run."""
    if file.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(file, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(file, encoding="utf-8", errors="replace", newline="")


class _RecordTooLong(Exception):
    """A CSV record ran over MAX_RECORD_LINES lines: an unclosed quote, not a recipe."""


class _LineFeed:
    """Numbered lines for csv.reader that remembers the lines of the record being read and can
    take them back. Why: an unclosed quote makes csv swallow every following line into one cell;
    with the feed, the broken record costs its first line only and the rest is read again."""

    def __init__(self, stream: Iterator[str]):
        self._stream = stream
        self._returned: deque[tuple[int, str]] = deque()
        self._number = 0
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _RecordTooLong
        if self._returned:
            item = self._returned.popleft()
        else:
            item = (self._number + 1, next(self._stream))
            self._number += 1
        self.taken.append(item)
        return item[1]

    def next_record(self) -> None:
        self.taken = []

    def give_back(self, items: list[tuple[int, str]]) -> None:
        self._returned.extendleft(reversed(items))


def _csv_rows(file: Path) -> Iterator[RawRow]:
    with _open_text(file) as stream:
        feed = _LineFeed(stream)
        reader = csv.reader(feed)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RecordTooLong) as exc:
            yield RawRow("malformed", f"{file}:1", error=f"unreadable CSV header ({exc})")
            return
        columns = [name.strip() for name in header]
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in columns]
        if missing:
            expected = ", ".join(RECIPE_COLUMNS)
            yield RawRow(
                "malformed", f"{file}:1", error=f"CSV header lacks {', '.join(missing)}; expected {expected}"
            )
            return
        wanted = [(i, name) for i, name in enumerate(columns) if name]  # "" is the unnamed index column
        width = len(columns)
        while True:
            feed.next_record()
            error = ""
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                cells, error = None, f"broken CSV line ({exc})"
            except _RecordTooLong:
                cells, error = None, f"unclosed quote (a record over {MAX_RECORD_LINES} lines)"
            where = f"{file}:{feed.taken[0][0]}" if feed.taken else str(file)
            if cells is not None and len(cells) == width:
                yield RawRow("recipe", where, {name: cells[i] for i, name in wanted})
            elif cells == []:
                continue  # a blank line is no row
            else:
                yield RawRow(
                    "malformed", where, error=error or f"{len(cells)} cells where the header has {width}"
                )
                feed.give_back(feed.taken[1:])


def _jsonl_rows(file: Path) -> Iterator[RawRow]:
    with _open_text(file) as stream:
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            where = f"{file}:{number}"
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow("malformed", where, error=f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(value, dict):
                yield RawRow(
                    "malformed", where, error=f"a JSON {type(value).__name__} where an object belongs"
                )
            elif "input" in value and "output" in value:
                yield RawRow("pair", where, {"input": value["input"], "output": value["output"]})
            else:
                if "ner" in value and "NER" not in value:
                    value["NER"] = value.pop("ner")
                yield RawRow("recipe", where, value)
