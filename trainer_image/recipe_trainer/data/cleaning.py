"""Raw rows -> clean `Recipe`s, and a `DropReport` saying what was dropped, what was repaired, and why.

Why: RecipeNLG is scraped; it holds duplicates (the same recipe on several sites), empty cells,
broken list columns and junk. The model should learn from each real recipe once. But it is also
full of real recipes that are only loud ("Mix together and CHOW!!!!!!!", "Don't peek!!!!!!!!!!!",
"BAKE AT 350 F FOR 1 HOUR."): those are repaired and kept, never dropped.

Per row, in order (the first failing check names the drop reason):
1. a malformed row from loading (broken CSV quoting, bad JSON) -> "malformed row";
2. list columns (ingredients, directions, NER) must be JSON lists of strings -> "unparseable <column>";
   a missing NER (a CSV without the column, a record without the key) is no fault: the ingredient
   names are derived from the ingredient lines after the checks below, counted under "normalised"
   as "ingredient names derived";
3. binary: a C0/C1 control character (tab, newline, CR, VT, FF are whitespace, not control) or two
   undecodable bytes in a row (U+FFFD U+FFFD, what `loading` makes of bytes that are not UTF-8)
   -> "control characters or binary". UTF-8 misread as latin-1 or cp1252 ("CafÃ©", "Donâ€™t")
   is repaired first ("Café", "Don’t"; counted as "mojibake"), so a real recipe is kept; a single
   U+FFFD (one stray byte of a legacy encoding in an otherwise real recipe) is kept as it is;
4. text: HTML entities unescaped, unicode NFKC, whitespace runs -> one space, empty items removed;
5. loud text is normalised and kept, counted under "normalised" with examples: runs of ! and ?
   become one mark ("!!!!!!" -> "!"), runs of 4+ dots an ellipsis, decoration runs ("------",
   "*~*~*~", "____") a space, any other mark repeated 4+ times one mark ("loud punctuation");
   an item (title, ingredient line or step) of 4+ letters, all of them capitals, is re-cased:
   titles in capitalised words, steps in sentence case, ingredient lines in lower case ("shouting");
6. no title / no ingredients / no directions -> "missing <field>";
7. placeholders: a title without 2 letters, ingredients of which none has 2 letters, or steps of
   which none has 3 letters ("a", "x", "1", "-") -> "placeholder title|ingredients|steps";
8. junk: a run of 6+ punctuation marks that normalising left (keyboard mashing: "!@#$%^&*()")
   -> "junk text"; a title over 150 characters -> "title too long";
9. duplicates: "exact duplicate" (same title, ingredients and directions, ignoring case) and
   "near duplicate" (same title up to case and punctuation, and the same set of ingredient names:
   NER when present, else the ingredient lines without amounts). The first one seen is kept.

Nothing is dropped or changed silently: every drop is counted in the report by reason, every
repair by kind, with the first few rows (file:line and a short excerpt) as examples. The report
is a plain JSON-able dict, filled in while the recipes stream, so it is complete once the
iterator is exhausted. How often each rule fires on real and on junk rows is measured by
`bench/cleaning_rules.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import string
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..recipe_text import ingredient_name, parse_recipe_text
from .loading import RawRow
from .records import Recipe

EXAMPLES_PER_REASON = 3
MAX_TITLE_CHARS = 150
SHOUTING_MIN_LETTERS = 4
MIN_TITLE_LETTERS, MIN_INGREDIENT_LETTERS, MIN_STEP_LETTERS = 2, 2, 3

MALFORMED = "malformed row"
EXACT_DUPLICATE = "exact duplicate"
NEAR_DUPLICATE = "near duplicate"
BINARY = "control characters or binary"
JUNK = "junk text"
LONG_TITLE = "title too long"
PLACEHOLDER = "placeholder {}"  # title, ingredients or steps
# kinds of repair (report["normalised"])
LOUD_PUNCTUATION = "loud punctuation"
SHOUTING = "shouting"
MOJIBAKE = "mojibake"
DERIVED_NER = "ingredient names derived"  # no NER column: names taken from the ingredient lines

_BINARY = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]|\ufffd\ufffd")
_MOJIBAKE_HINT = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152-\u203a\u20ac\u2122]")  # "Ã©", "â€™"
_PUNCTUATION_RUN = re.compile(r"[^\w\s]{2,}")
_LOUD_MARKS = re.compile(r"[!?]{2,}")
_DOTS = re.compile(r"\.{4,}")
_DECORATION = re.compile(r"[-=*~+#^<>|_\u2022\u00b7]{4,}|_{3,}")
_REPEATED_MARK = re.compile(r"([^\w\s])\1{3,}")
_JUNK_RUN = re.compile(r"[^\w\s]{6,}")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_PRONOUN_I = re.compile(r"\bi\b(?!\.)")
_FAHRENHEIT = re.compile(r"(\d\s?\u00b0?\s?)f\b")
_TITLE_LETTERS, _INGREDIENT_LETTERS, _STEP_LETTERS = (
    re.compile(r"[^\W\d_]" + r"(?:.*?[^\W\d_])" * (n - 1))
    for n in (MIN_TITLE_LETTERS, MIN_INGREDIENT_LETTERS, MIN_STEP_LETTERS)
)  # an item with at least n letters (any alphabet)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_LIST_JSON = json.JSONDecoder(strict=False)  # raw tabs tolerated; one decoder, not one per call
_AMOUNT = re.compile(r"[\d\u00bc-\u00be\u2150-\u215e/.()-]+")


class DropReport(dict):
    """{"rows": read, "kept": n, "dropped": {reason: n}, "examples": {reason: ["file:line: excerpt"]},
    "normalised": {kind: recipes}, "normalised_examples": {kind: ["file:line: before -> after"]}}.
    A dict so it goes to JSON (the token cache's report.json) and to logs as it is. A kept recipe
    repaired in two ways counts once under each kind."""

    def __init__(self) -> None:
        super().__init__(rows=0, kept=0, dropped={}, examples={}, normalised={}, normalised_examples={})

    def drop(self, rejected: Rejected) -> None:
        reason = rejected.reason
        self["dropped"][reason] = self["dropped"].get(reason, 0) + 1
        examples = self["examples"].setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            excerpt = rejected.excerpt[:120]
            if not excerpt.isprintable():  # control characters shown escaped, not sent to a terminal
                excerpt = repr(excerpt)[1:-1]
            examples.append(f"{rejected.where}: {excerpt}" if excerpt else rejected.where)

    def normalised(self, where: str, repairs: dict[str, tuple[str, str]]) -> None:
        """Count a kept recipe's repairs ({kind: (before, after)}, `Recipe.extra["normalised"]`)."""
        for kind, (before, after) in repairs.items():
            self["normalised"][kind] = self["normalised"].get(kind, 0) + 1
            examples = self["normalised_examples"].setdefault(kind, [])
            if len(examples) < EXAMPLES_PER_REASON:
                examples.append(f"{where}: {before[:100]!r} -> {after[:100]!r}")

    @property
    def dropped_total(self) -> int:
        return sum(self["dropped"].values())

    def nothing_kept(self, path: object) -> str:
        """One line for a dataset of which no row was kept: how many were read, the most common
        drop reason and its first example, whose file:line is never cut."""
        if not self["rows"]:
            return f"dataset.path: {path} holds no rows (a header or blank lines only); add recipes"
        reason, count = max(self["dropped"].items(), key=lambda item: item[1])
        example = self["examples"][reason][0]
        return (
            f"dataset.path: no row of {path} is usable: {self['rows']:,} read, {count:,} dropped as "
            f"{reason!r}, e.g. {example}"
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a row is no recipe: what `prepare_row` gives instead of one."""

    where: str
    reason: str
    excerpt: str = ""


@dataclass(frozen=True, slots=True)
class Admission:
    """What deduplication, the report and the split need of a recipe cleaned in a worker process
    that also made the recipe's payload there (`split.Finish`, the token-cache rows): sending this
    back instead of the whole recipe halves what the reading process unpickles."""

    row: str
    title: str
    keys: tuple[int, int | None]  # `duplicate_keys`
    repairs: dict  # Recipe.extra["normalised"]
    split_position: float  # `split.split_position`


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


def readable(text: str, repairs: dict | None = None) -> str:
    """`text` with double-encoded UTF-8 repaired, or `_Dropped` when it holds control characters
    or binary bytes (see the module docstring). Call before `normalize_text`, whose whitespace
    collapsing would hide some control characters (\x1c-\x1f count as whitespace for str.split)."""
    if text.isascii() and text.isprintable():
        return text
    if _MOJIBAKE_HINT.search(text):
        for wrong in ("latin-1", "cp1252"):  # the two ways UTF-8 gets misread
            try:
                repaired = text.encode(wrong).decode("utf-8")
            except UnicodeError:
                continue
            if repairs is not None:
                repairs.setdefault(MOJIBAKE, (text, repaired))
            text = repaired
            break
    found = _BINARY.search(text)
    if found:
        raise _Dropped(BINARY, text[max(0, found.start() - 30) : found.end() + 30])
    return text


def parse_list(value: Any, column: str, repairs: dict | None = None) -> tuple[str, ...]:
    """A list column (JSON text or a list) as clean, non-empty strings; `_Dropped` if it is not one
    or holds binary text."""
    plain = False
    if isinstance(value, str):
        # printable ASCII (no tabs or newlines) without entities, escapes or double spaces: the common case
        plain = (
            value.isascii()
            and value.isprintable()
            and "&" not in value
            and "\\" not in value
            and "  " not in value
        )
        try:
            value = _LIST_JSON.decode(value) if value.strip() else []
        except (ValueError, RecursionError):  # bad, too deep, or an integer too long to convert
            raise _Dropped(f"unparseable {column}", value[:200]) from None
    if not isinstance(value, list):
        raise _Dropped(f"unparseable {column}", str(value))
    if plain and all(type(item) is str for item in value):
        return tuple(filter(None, map(str.strip, value)))  # nothing to normalise but the ends
    items = []
    for item in value:
        if isinstance(item, str) and item.isascii() and item.isprintable() and "&" not in item:
            item = " ".join(item.split())  # the common case, without normalize_text's call
        elif isinstance(item, str | int | float):
            item = normalize_text(readable(str(item), repairs))
        else:
            raise _Dropped(f"unparseable {column}", str(value))
        if item:
            items.append(item)
    return tuple(items)


def normalise_punctuation(text: str) -> str:
    """Loud punctuation made plain: "!!!!" -> "!", "?!?!" -> "?", "......" -> "...", decoration
    runs ("-----", "*~*~*~", "____") -> a space, any other mark repeated 4+ times -> one."""
    text = _LOUD_MARKS.sub(lambda m: "?" if "?" in m.group() else "!", text)
    text = _DOTS.sub("...", text)
    text = _DECORATION.sub(" ", text)
    text = _REPEATED_MARK.sub(r"\1", text)
    return " ".join(text.split())


def is_shouting(text: str) -> bool:
    """4+ letters, all of them capitals. (One loud word in a sentence, "Mix and CHOW!", is not.)"""
    return text.isupper() and sum(map(str.isalpha, text)) >= SHOUTING_MIN_LETTERS


def quieten(text: str, kind: str) -> str:
    """A shouted item in ordinary case: "title" in capitalised words, "step" in sentence case
    (with "I" and degrees F kept upper case), "ingredient" in lower case; others unchanged."""
    if not is_shouting(text):
        return text
    text = text.lower()
    if kind == "title":
        return string.capwords(text)
    if kind == "step":
        text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
        text = _PRONOUN_I.sub("I", text)
        return _FAHRENHEIT.sub(lambda m: m.group(1) + "F", text)
    return text


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
    repairs: dict[str, tuple[str, str]] = {}
    raw_title = fields.get("title")
    title = normalize_text(readable(str(raw_title), repairs) if raw_title is not None else None)
    ingredients = parse_list(fields.get("ingredients"), "ingredients", repairs)
    directions = parse_list(fields.get("directions"), "directions", repairs)
    ner = parse_list(fields["NER"], "NER", repairs) if fields.get("NER") is not None else None
    title, ingredients, directions, long_runs = _quieten(title, ingredients, directions, repairs)
    for name, value in (("title", title), ("ingredients", ingredients), ("directions", directions)):
        if not value:
            raise _Dropped(f"missing {name}", title)
    _reject_placeholders(title, ingredients, directions)
    _reject_junk(title, ingredients, directions, long_runs)
    if ner is None:
        ner = derived_ner(ingredients, repairs)
    return Recipe(
        title=title,
        ingredients=ingredients,
        directions=directions,
        ner=ner,
        source=normalize_text(fields.get("source")),
        link=normalize_text(fields.get("link")),
        row=row.where,
        extra={"normalised": repairs} if repairs else {},
    )


def derived_ner(ingredients: tuple[str, ...], repairs: dict) -> tuple[str, ...]:
    """RecipeNLG's NER for a recipe that has none: each ingredient line's name
    (`recipe_text.ingredient_name`), noted in `repairs` as DERIVED_NER so the report counts it."""
    names = tuple(name for name in map(ingredient_name, ingredients) if name)
    if names:
        repairs.setdefault(DERIVED_NER, (ingredients[0], ", ".join(names)))
    return names


def _quieten(
    title: str, ingredients: tuple[str, ...], directions: tuple[str, ...], repairs: dict
) -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
    """Loud punctuation and shouting normalised (step 5 of the module docstring); each kind of
    repair is noted in `repairs` with its first (before, after). Also says whether there was a
    run of 6+ marks (only then can junk be left). Why the pre-checks: one regex pass over the
    recipe and `str.isupper` per item cost little, and most recipes need nothing more."""
    fields = [(title,), ingredients, directions]
    everything = "\n".join((title, *ingredients, *directions))
    runs = _PUNCTUATION_RUN.findall(everything)
    if "___" in everything or any(len(run) >= 4 or _LOUD_MARKS.search(run) for run in runs):
        fields = [_each(items, normalise_punctuation, LOUD_PUNCTUATION, repairs) for items in fields]
    for f, kind in enumerate(("title", "ingredient", "step")):
        if any(map(str.isupper, fields[f])):
            fields[f] = _each(fields[f], lambda item, k=kind: quieten(item, k), SHOUTING, repairs)
    (title,) = fields[0] or ("",)
    return title, fields[1], fields[2], any(len(run) >= 6 for run in runs)


def _each(items: tuple[str, ...], change, kind: str, repairs: dict) -> tuple[str, ...]:
    """`change` applied to every item, empty results removed, the first change noted as `kind`."""
    changed = []
    for item in items:
        new = change(item)
        if new != item:
            repairs.setdefault(kind, (item, new))
        if new:
            changed.append(new)
    return tuple(changed)


def _pair(row: RawRow) -> Recipe:
    source, target = (row.fields.get(key) for key in ("input", "output"))
    if not (isinstance(source, str) and isinstance(target, str) and source.strip() and target.strip()):
        raise _Dropped("missing input or output", str(source)[:60])
    source, target = (unicodedata.normalize("NFKC", readable(text)).strip() for text in (source, target))
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

    def admit(self, prepared: Recipe | Admission | Rejected) -> Recipe | Admission | None:
        """Count a `prepare_row` result (made here or in a worker) and drop duplicates; rows must
        come in their reading order, so that the first of two duplicates is the one kept."""
        self.report["rows"] += 1
        if isinstance(prepared, Rejected):
            self.report.drop(prepared)
            return None
        if isinstance(prepared, Admission):
            keys, repairs = prepared.keys, prepared.repairs
        else:
            keys, repairs = duplicate_keys(prepared), prepared.extra.get("normalised", {})
        reason = self._duplicate(keys)
        if reason is None:
            self.report["kept"] += 1
            self.report.normalised(prepared.row, repairs)
            return prepared
        self.report.drop(Rejected(prepared.row, reason, prepared.title))
        return None

    def clean_all(self, rows: Iterable[RawRow]) -> Iterator[Recipe]:
        for row in rows:
            recipe = self.clean(row)
            if recipe is not None:
                yield recipe

    def _duplicate(self, keys: tuple[int, int | None]) -> str | None:
        """The duplicate reason, or None after remembering the recipe's keys."""
        exact, near = keys
        if exact in self._exact:
            return EXACT_DUPLICATE
        if near is not None and near in self._near:
            return NEAR_DUPLICATE
        self._exact.add(exact)
        if near is not None:
            self._near.add(near)
        return None


def duplicate_keys(recipe: Recipe) -> tuple[int, int | None]:
    """(exact, near) keys of a recipe (module docstring, 9.); a built pair has no near key. 64-bit
    BLAKE2b, the same in every process (workers compute them), so a collision among 2.2M recipes
    is about 1 in 10 million."""
    if recipe.pair is not None:
        return _key("\x1e".join(recipe.pair)), None
    title = recipe.title.lower()
    exact = "\x1f".join((title, *recipe.ingredients, "", *recipe.directions)).lower()
    names = sorted(_ingredient_set(recipe.ingredients, recipe.ner))
    near = "\x1f".join((_NOT_ALNUM.sub(" ", title).strip(), *names))
    return _key(exact), _key(near)


def _key(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def _ingredient_set(ingredients: tuple[str, ...], ner: tuple[str, ...]) -> frozenset[str]:
    if ner:
        return frozenset(name.lower() for name in ner)
    return frozenset(" ".join(_AMOUNT.sub(" ", item.lower()).split()) for item in ingredients)


def _reject_placeholders(title: str, ingredients: tuple[str, ...], directions: tuple[str, ...]) -> None:
    """Rows whose title, ingredients or steps are too short to be real ("x", "1", "-")."""
    for name, items, pattern in (
        ("title", (title,), _TITLE_LETTERS),
        ("ingredients", ingredients, _INGREDIENT_LETTERS),
        ("steps", directions, _STEP_LETTERS),
    ):
        if not any(pattern.search(item) for item in items):
            raise _Dropped(PLACEHOLDER.format(name), f"{title} | {' | '.join(items[:4])}")


def _reject_junk(
    title: str, ingredients: tuple[str, ...], directions: tuple[str, ...], long_runs: bool
) -> None:
    if len(title) > MAX_TITLE_CHARS:
        raise _Dropped(LONG_TITLE, title)
    if not long_runs:
        return
    text = " ".join((title, *ingredients, *directions))
    junk = _JUNK_RUN.search(text)
    if junk:
        raise _Dropped(JUNK, text[max(0, junk.start() - 30) : junk.end() + 30])


def clean_recipes(rows: Iterable[RawRow]) -> tuple[Iterator[Recipe], DropReport]:
    """Stream clean recipes out of raw rows. The report fills as the iterator is consumed."""
    cleaner = RecipeCleaner()
    return cleaner.clean_all(rows), cleaner.report
