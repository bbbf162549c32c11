"""Stream raw rows out of recipe files, one at a time, whatever their state.

Why streaming: the full RecipeNLG corpus is 2.2M recipes (about 2.3 GB); no stage may hold a whole
file. Why "raw": loading only splits the file into rows and never judges them. A line that cannot
be read (broken CSV quoting, invalid JSON, a wrong number of columns) becomes a `RawRow` of kind
"malformed" with the reason, so the cleaning stage counts it and the run goes on.

Formats, told apart by the file's content (`detect_format`), not its name:
* RecipeNLG CSV: header `title, ingredients, directions, link, source, NER`, with or without the
  unnamed leading index column, with or without `NER` (cleaning then derives the ingredient names
  from the ingredient lines, and counts it); list columns hold JSON strings (parsed later).
* JSON lines, one object per line, each either a recipe (`title`, `ingredients`, `directions`,
  optionally `NER`/`ner`, `link`, `source`), or an already-built pair, kind "pair", which
  formatting passes through untouched: `prompt`/`completion`, `input`/`output`, or chat
  `messages` (system/user/assistant: everything before the last assistant message is the prompt,
  that message the completion).
* Parquet with the same columns as either (lists as list columns or JSON strings).
A file that is none of these is refused in one line saying what it holds instead.
A path may be a file or a directory (its matching files, recursively, in sorted path order, so the
row order - and with it which of two duplicates is kept - never depends on the file system).
Files ending in `.gz` are read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RowKind = Literal["recipe", "pair", "malformed"]
Format = Literal["auto", "recipenlg-csv", "jsonl", "parquet"]
FileFormat = Literal["recipenlg-csv", "jsonl", "parquet"]

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
RECIPE_COLUMNS = ("title", "ingredients", "directions", "link", "source", "NER")
REQUIRED_CSV_COLUMNS = ("title", "ingredients", "directions")
PAIR_KEYS = (("prompt", "completion"), ("input", "output"))  # (prompt side, completion side)
MAX_RECORD_LINES = 64  # RecipeNLG records are one line; a longer one is a broken quote
SNIFF_LINES = 20  # lines looked at to tell JSON lines from the rest
SNIFF_CHARS = 1 << 20  # at most this much read for it (a binary file may have no newline)
PARQUET_MAGIC = b"PAR1"
ACCEPTED = (
    "a RecipeNLG CSV, JSON lines (recipes, prompt/completion, input/output or chat messages) or Parquet"
)

# One line (a JSON record, a CSV line) and one CSV cell are at most this long: RecipeNLG's longest
# direction cells are tens of KiB, and a longer line is read no further but dropped and counted,
# so one multi-GB line cannot exhaust rank 0's memory (issue 23, finding 9).
MAX_LINE_CHARS = 1 << 20
csv.field_size_limit(MAX_LINE_CHARS)


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read. `fields` holds the raw values (CSV cells are strings, list columns still
    JSON text); `where` is "file:line" for reports; `error` says why a malformed row is malformed."""

    kind: RowKind
    where: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Detected:
    """What a file holds: its format and, for people, what it is ("JSON lines of chat messages")."""

    format: FileFormat
    description: str


class UnknownFormat(ValueError):
    """A file in none of the accepted formats; the message names the file and what it holds."""


def iter_raw_rows(path: str | Path, format: Format = "auto") -> Iterator[RawRow]:
    """Every row of the file or directory at `path`, streamed in a stable order."""
    for file in data_files(path, format):
        file_format = format if format != "auto" else detect_format(file).format
        reader = {"recipenlg-csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[file_format]
        yield from reader(file)


def data_files(path: str | Path, format: Format = "auto") -> list[Path]:
    """The files `path` names: itself, or a directory's data files in sorted order."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(
            f"dataset.path: {root} does not exist; point it at a RecipeNLG CSV, JSONL or Parquet file"
        )
    if root.is_file():
        return [root]
    suffixes = {"recipenlg-csv": CSV_SUFFIXES, "jsonl": JSONL_SUFFIXES, "parquet": PARQUET_SUFFIXES}.get(
        format, CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
    )
    files = sorted(p for p in root.rglob("*") if p.is_file() and _plain_suffix(p) in suffixes)
    if not files:
        raise FileNotFoundError(
            f"dataset.path: {root} holds no {'/'.join(suffixes)} files; add data or fix the path"
        )
    return files


def describe_dataset(path: str | Path, format: Format = "auto") -> str:
    """One line saying what the dataset is, e.g. "RecipeNLG CSV without NER (...)" or, for a
    directory, each kind of file with its count. Raises `UnknownFormat` for a file in no format."""
    files = data_files(path, format)
    kinds: dict[str, int] = {}
    for file in files:
        description = detect_format(file).description
        kinds[description] = kinds.get(description, 0) + 1
    if len(files) == 1:
        return next(iter(kinds))
    return "; ".join(f"{n} file{'s' * (n > 1)} of {kind}" for kind, n in kinds.items())


def _plain_suffix(path: Path) -> str:
    """The data suffix, looking through a trailing .gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def detect_format(file: Path) -> Detected:
    """The format of `file`, judged by its content (module docstring); `UnknownFormat` naming what
    was found when it is none of them."""
    with open(file, "rb") as raw:
        head = raw.read(4)
    if head == PARQUET_MAGIC:
        return _parquet_kind(file)
    if file.stat().st_size == 0:
        raise UnknownFormat(f"dataset.path: {file} is empty (0 bytes); expected {ACCEPTED}")
    with _open_text(file) as stream:
        lines = [line for line in stream.read(SNIFF_CHARS).splitlines() if line.strip()][:SNIFF_LINES]
    if not lines:
        raise UnknownFormat(f"dataset.path: {file} holds only blank lines; expected {ACCEPTED}")
    sample = "".join(lines)
    if "\x00" in sample or "\ufffd\ufffd" in sample:
        raise UnknownFormat(f"dataset.path: {file} holds binary data (it starts {head!r}), not {ACCEPTED}")
    if lines[0].lstrip().startswith("["):
        raise UnknownFormat(
            f"dataset.path: {file} holds a JSON array; write one JSON object per line (JSON lines)"
        )
    if lines[0].lstrip().startswith("{"):
        return _jsonl_kind(file, lines)
    try:
        header = [name.strip() for name in next(csv.reader([lines[0]]))]
    except csv.Error:
        header = []
    if all(column in header for column in REQUIRED_CSV_COLUMNS):
        if "NER" in header:
            return Detected("recipenlg-csv", "RecipeNLG CSV")
        return Detected(
            "recipenlg-csv", "RecipeNLG CSV without NER (ingredient names derived from the lines)"
        )
    if len(header) > 1:
        found = f"a CSV header with columns {', '.join(header)}; a RecipeNLG CSV needs title, ingredients, directions"
    else:
        found = f"text starting {lines[0].strip()[:60]!r}; expected {ACCEPTED}"
    raise UnknownFormat(f"dataset.path: {file} holds {found}")


def _jsonl_kind(file: Path, lines: list[str]) -> Detected:
    """JSON lines, and which kind of record, from the first object that parses."""
    for line in lines:
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            continue
        if isinstance(value, dict):
            return Detected("jsonl", f"JSON lines of {_record_kind(value.keys(), file)}")
    raise UnknownFormat(
        f"dataset.path: {file} holds no complete JSON object on its first {len(lines)} lines "
        "(pretty-printed JSON?); write one object per line (JSON lines)"
    )


def _parquet_kind(file: Path) -> Detected:
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(file).schema_arrow.names
    except Exception as exc:  # a truncated or corrupt file: pyarrow's own words say which
        raise UnknownFormat(f"dataset.path: {file} is an unreadable Parquet file ({exc})") from None
    return Detected("parquet", f"Parquet of {_record_kind(names, file)}")


def _record_kind(keys, file: Path) -> str:
    """What records with these keys (columns) are, for `Detected.description`; `UnknownFormat`
    for keys that make no recipe and no pair."""
    keys = set(keys)
    if "messages" in keys:
        return "chat messages (passed through as prompt/completion pairs)"
    for prompt, completion in PAIR_KEYS:
        if {prompt, completion} <= keys:
            return f"{prompt}/{completion} pairs (passed through as they are)"
    if set(REQUIRED_CSV_COLUMNS) <= keys:
        if keys & {"NER", "ner"}:
            return "recipe records"
        return "recipe records without NER (ingredient names derived from the lines)"
    raise UnknownFormat(
        f"dataset.path: {file} holds records with keys {', '.join(sorted(keys))}; expected title/"
        "ingredients/directions, prompt/completion, input/output or messages"
    )


def _open_text(file: Path) -> io.TextIOBase:
    """Text stream; undecodable bytes become U+FFFD instead of stopping the run."""
    if file.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(file, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(file, encoding="utf-8", errors="replace", newline="")


class _RecordTooLong(Exception):
    """A CSV record ran over MAX_RECORD_LINES lines: an unclosed quote, not a recipe."""


class _LineTooLong(Exception):
    """A line over MAX_LINE_CHARS characters: read no further, dropped as malformed."""


TOO_LONG = f"a line over {MAX_LINE_CHARS} characters (not read further)"


def _bounded_lines(stream: io.TextIOBase) -> Iterator[str | None]:
    """The stream's lines, each read only up to MAX_LINE_CHARS: a longer one is skipped to its end
    a chunk at a time and given as None, so no line is ever held whole."""
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_CHARS or line.endswith(("\n", "\r")):
            yield line
            continue
        while (rest := stream.readline(MAX_LINE_CHARS)) and not rest.endswith(("\n", "\r")):
            pass
        yield None


class _LineFeed:
    """Numbered lines for csv.reader that remembers the lines of the record being read and can
    take them back. Why: an unclosed quote makes csv swallow every following line into one cell;
    with the feed, the broken record costs its first line only and the rest is read again."""

    def __init__(self, stream: Iterator[str | None]):
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
            text = next(self._stream)
            self._number += 1
            if text is None:
                raise _LineTooLong(self._number)
            item = (self._number, text)
        self.taken.append(item)
        return item[1]

    def next_record(self) -> None:
        self.taken = []

    def give_back(self, items: list[tuple[int, str]]) -> None:
        self._returned.extendleft(reversed(items))


def _csv_rows(file: Path) -> Iterator[RawRow]:
    with _open_text(file) as stream:
        feed = _LineFeed(_bounded_lines(stream))
        reader = csv.reader(feed)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RecordTooLong, _LineTooLong) as exc:
            reason = TOO_LONG if isinstance(exc, _LineTooLong) else exc
            yield RawRow("malformed", f"{file}:1", error=f"unreadable CSV header ({reason})")
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
            except _LineTooLong as long_line:
                if not feed.taken:  # the record's first line: it alone is dropped
                    feed.taken = [(long_line.args[0], "")]
                cells, error = None, TOO_LONG
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
        for number, text in enumerate(_bounded_lines(stream), start=1):
            where = f"{file}:{number}"
            if text is None:
                yield RawRow("malformed", where, error=TOO_LONG)
                continue
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow("malformed", where, error=f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            except RecursionError:
                yield RawRow("malformed", where, error="JSON nested too deeply")
                continue
            except ValueError as exc:  # e.g. an integer of more digits than Python converts
                yield RawRow("malformed", where, error=f"invalid JSON ({str(exc)[:100]})")
                continue
            yield _record_row(value, where)


def _parquet_rows(file: Path) -> Iterator[RawRow]:
    """Parquet rows, streamed a batch at a time; `where` is file:row (1-based)."""
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=4096):
        for value in batch.to_pylist():
            number += 1
            yield _record_row(value, f"{file}:{number}")


def _record_row(value: Any, where: str) -> RawRow:
    """A JSON object or Parquet row as a raw recipe, or as a pair for the pair layouts."""
    if not isinstance(value, dict):
        return RawRow("malformed", where, error=f"a JSON {type(value).__name__} where an object belongs")
    if "messages" in value:
        return _chat_row(value["messages"], where)
    for prompt, completion in PAIR_KEYS:
        if prompt in value and completion in value:
            return RawRow("pair", where, {"input": value[prompt], "output": value[completion]})
    if "ner" in value and "NER" not in value:
        value["NER"] = value.pop("ner")
    return RawRow("recipe", where, value)


def _chat_row(messages: Any, where: str) -> RawRow:
    """Chat `messages` as a pair: the last assistant message is the output, the contents before
    it (system, user, earlier turns) joined by newlines the input."""
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
    ):
        return RawRow("malformed", where, error="messages must be a list of {role, content} objects")
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        return RawRow("malformed", where, error="messages hold no assistant message to learn")
    prompt = "\n".join(m["content"] for m in messages[:last])
    return RawRow("pair", where, {"input": prompt, "output": messages[last]["content"]})
