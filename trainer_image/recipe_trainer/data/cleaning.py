"""Raw rows -> clean `Recipe`s, and a `DropReport` saying what was dropped and why.

Why: RecipeNLG is scraped; it holds duplicates (the same recipe on several sites), empty cells,
broken list columns and junk. The model should learn from each real recipe once.

Per row, in order (the first failing check names the drop reason):
1. a malformed row from loading (broken CSV quoting, bad JSON) -> "malformed row";
2. list columns (ingredients, directions, NER) must be JSON lists of strings -> "unparseable <column>";
3. text: HTML entities unescaped, unicode NFKC, whitespace runs -> one space, empty items removed;
   an all-capitals title is title-cased (a repair, not a drop);
4. no title / no ingredients / no directions -> "missing <field>";
5. junk: a run of 6+ punctuation marks ("!!!!!!", "------", "*~*~*~"), a title over 150
   characters, or shouting (directions of 20+ ASCII letters, over 60% of them capitals);
6. duplicates: "exact duplicate" (same title, ingredients and directions, ignoring case) and
   "near duplicate" (same title up to case and punctuation, and the same set of ingredient names:
   NER when present, else the ingredient lines without amounts). The first one seen is kept.

Nothing is dropped silently: every drop is counted in the report by reason, with the first few
rows (file:line and a short excerpt) as examples. The report is a plain JSON-able dict, filled in
while the recipes stream, so it is complete once the iterator is exhausted.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..quality import parse_recipe_text
from .loading import RawRow
from .records import Recipe

EXAMPLES_PER_REASON = 3
MAX_TITLE_CHARS = 150
SHOUTING_MIN_LETTERS, SHOUTING_CAPITALS = 20, 0.6

MALFORMED = "malformed row"
EXACT_DUPLICATE = "exact duplicate"
NEAR_DUPLICATE = "near duplicate"
JUNK = "junk text"
SHOUTING = "shouting"
LONG_TITLE = "title too long"

_JUNK_RUN = re.compile(r"[^\w\s]{6,}")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_AMOUNT = re.compile(r"[\d\u00bc-\u00be\u2150-\u215e/.()-]+")
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS = _UPPER + b"abcdefghijklmnopqrstuvwxyz"  # ASCII only: bytes.translate is 10x faster than str's


class DropReport(dict):
    """{"rows": read, "kept": n, "dropped": {reason: n}, "examples": {reason: ["file:line: excerpt"]}}.
    A dict so it goes to JSON (the token cache's report.json) and to logs as it is."""

    def __init__(self) -> None:
        super().__init__(rows=0, kept=0, dropped={}, examples={})

    def drop(self, rejected: Rejected) -> None:
        reason = rejected.reason
        self["dropped"][reason] = self["dropped"].get(reason, 0) + 1
        examples = self["examples"].setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            excerpt = rejected.excerpt[:120]
            examples.append(f"{rejected.where}: {excerpt}" if excerpt else rejected.where)

    @property
    def dropped_total(self) -> int:
        return sum(self["dropped"].values())


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a row is no recipe: what `prepare_row` gives instead of one."""

    where: str
    reason: str
    excerpt: str = ""


class _Dropped(Exception):
    def __init__(self, reason: str, excerpt: str = ""):
        super().__init__(reason)
        self.reason, self.excerpt = reason, excerpt


def normalize_text(text: Any) -> str:
    """One clean line: HTML entities unescaped, unicode NFKC, whitespace collapsed."""
    text = "" if text is None else str(text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


def parse_list(value: Any, column: str) -> tuple[str, ...]:
    """A list column (JSON text or a list) as clean, non-empty strings; `_Dropped` if it is not one."""
    plain = False
    if isinstance(value, str):
        # printable ASCII (no tabs or newlines) without entities, escapes or double spaces: the common case
        plain = value.isascii() and value.isprintable() and not any(m in value for m in ("&", "\\", "  "))
        try:
            value = json.loads(value, strict=False) if value.strip() else []  # raw tabs tolerated
        except json.JSONDecodeError:
            raise _Dropped(f"unparseable {column}", value) from None
    if not isinstance(value, list):
        raise _Dropped(f"unparseable {column}", str(value))
    if plain and all(type(item) is str for item in value):
        return tuple(filter(None, map(str.strip, value)))  # nothing to normalise but the ends
    items = []
    for item in value:
        if isinstance(item, str) and item.isascii() and "&" not in item:
            item = " ".join(item.split())  # the common case, without normalize_text's call
        elif isinstance(item, str | int | float):
            item = normalize_text(item)
        else:
            raise _Dropped(f"unparseable {column}", str(value))
        if item:
            items.append(item)
    return tuple(items)


def prepare_row(row: RawRow) -> Recipe | Rejected:
    """All that cleaning does to one row on its own (parse, normalise, reject junk). Pure, so it
    can run in worker processes; duplicates are left to `RecipeCleaner`, which sees every row."""
    try:
        return _pair(row) if row.kind == "pair" else _recipe(row)
    except _Dropped as dropped:
        return Rejected(row.where, dropped.reason, dropped.excerpt)


def _recipe(row: RawRow) -> Recipe:
    if row.kind == "malformed":
        raise _Dropped(MALFORMED, row.error)
    fields = row.fields
    title = normalize_text(fields.get("title"))
    ingredients = parse_list(fields.get("ingredients"), "ingredients")
    directions = parse_list(fields.get("directions"), "directions")
    ner = parse_list(fields.get("NER"), "NER")
    if title.isupper():
        title = title.title()
    for name, value in (("title", title), ("ingredients", ingredients), ("directions", directions)):
        if not value:
            raise _Dropped(f"missing {name}", title)
    _reject_junk(title, ingredients, directions)
    return Recipe(
        title=title,
        ingredients=ingredients,
        directions=directions,
        ner=ner,
        source=normalize_text(fields.get("source")),
        link=normalize_text(fields.get("link")),
        row=row.where,
    )


def _pair(row: RawRow) -> Recipe:
    source, target = (row.fields.get(key) for key in ("input", "output"))
    if not (isinstance(source, str) and isinstance(target, str) and source.strip() and target.strip()):
        raise _Dropped("missing input or output", str(source)[:60])
    source, target = (unicodedata.normalize("NFKC", text).strip() for text in (source, target))
    parsed = parse_recipe_text(target)
    return Recipe(
        title=parsed.title or normalize_text(source),
        ingredients=parsed.ingredients,
        directions=parsed.steps,
        row=row.where,
        pair=(source, target),
    )


class RecipeCleaner:
    """Cleans rows one by one: remembers what it has seen (duplicates) and reports every drop."""

    def __init__(self) -> None:
        self.report = DropReport()
        self._exact: set[int] = set()
        self._near: set[int] = set()

    def clean(self, row: RawRow) -> Recipe | None:
        """The clean recipe of a row, or None (then the drop is in `self.report`)."""
        return self.admit(prepare_row(row))

    def admit(self, prepared: Recipe | Rejected) -> Recipe | None:
        """Count a `prepare_row` result (made here or in a worker) and drop duplicates; rows must
        come in their reading order, so that the first of two duplicates is the one kept."""
        self.report["rows"] += 1
        if isinstance(prepared, Recipe):
            reason = self._duplicate(prepared)
            if reason is None:
                self.report["kept"] += 1
                return prepared
            prepared = Rejected(prepared.row, reason, prepared.title)
        self.report.drop(prepared)
        return None

    def clean_all(self, rows: Iterable[RawRow]) -> Iterator[Recipe]:
        for row in rows:
            recipe = self.clean(row)
            if recipe is not None:
                yield recipe

    def _duplicate(self, recipe: Recipe) -> str | None:
        """The duplicate reason, or None after remembering the recipe. Python's hash is enough:
        keys live for one run, and a 64-bit collision among 2.2M recipes is about 1 in 10 million."""
        if recipe.pair is not None:
            exact, near = hash(recipe.pair), None
        else:
            title = recipe.title.lower()
            text = "\x1f".join((title, *recipe.ingredients, "", *recipe.directions)).lower()
            exact = hash(text)
            near = hash((_NOT_ALNUM.sub(" ", title).strip(), _ingredient_set(recipe.ingredients, recipe.ner)))
        if exact in self._exact:
            return EXACT_DUPLICATE
        if near is not None and near in self._near:
            return NEAR_DUPLICATE
        self._exact.add(exact)
        if near is not None:
            self._near.add(near)
        return None


def _ingredient_set(ingredients: tuple[str, ...], ner: tuple[str, ...]) -> frozenset[str]:
    if ner:
        return frozenset(name.lower() for name in ner)
    return frozenset(" ".join(_AMOUNT.sub(" ", item.lower()).split()) for item in ingredients)


def _reject_junk(title: str, ingredients: tuple[str, ...], directions: tuple[str, ...]) -> None:
    if len(title) > MAX_TITLE_CHARS:
        raise _Dropped(LONG_TITLE, title)
    text = " ".join((title, *ingredients, *directions))
    junk = _JUNK_RUN.search(text)
    if junk:
        raise _Dropped(JUNK, text[max(0, junk.start() - 30) : junk.end() + 30])
    steps = " ".join(directions).encode()
    letters = len(steps) - len(steps.translate(None, _LETTERS))
    if letters >= SHOUTING_MIN_LETTERS:
        capitals = len(steps) - len(steps.translate(None, _UPPER))
        if capitals > SHOUTING_CAPITALS * letters:
            raise _Dropped(SHOUTING, directions[0])


def clean_recipes(rows: Iterable[RawRow]) -> tuple[Iterator[Recipe], DropReport]:
    """Stream clean recipes out of raw rows. The report fills as the iterator is consumed."""
    cleaner = RecipeCleaner()
    return cleaner.clean_all(rows), cleaner.report
