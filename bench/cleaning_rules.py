"""Benchmark: does a cleaning rule eat real recipes? Drop and repair shares per rule, real vs junk.

    .venv/bin/python bench/cleaning_rules.py            # the bundled sample + 4,000 generated rows

Cleans (1) the bundled RecipeNLG sample as it is and (2) rows made from it, each labelled with how
it was made: real recipes made loud, shouted, decorated, accented, mis-encoded or minimal (they
must be kept), and junk (binary titles, one-letter placeholders, keyboard mashing) that must be
dropped. Prints, per drop reason and per repair kind, how many rows of each label it took, the
share of real rows each rule drops, and examples. Seeded: the same table every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from recipe_trainer.data.cleaning import RecipeCleaner
from recipe_trainer.data.loading import RawRow, iter_raw_rows

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "recipenlg_sample_999.csv"
ACCENTED = ["Crème Brûlée", "Jalapeño Poppers", "Café au Lait", "Smörgåstårta", "Pâté", "Piña Colada"]


def _loud_title(r, rng):
    r["title"] += "!" * rng.randint(3, 15)


def _loud_step(r, rng):
    i = rng.randrange(len(r["directions"]))
    r["directions"][i] = r["directions"][i].rstrip(".") + rng.choice(["!!!!!!!", "?????", "!?!?!?", "!!!"])


def _shouted_steps(r, rng):
    r["directions"] = [d.upper() for d in r["directions"]]


def _shouted_recipe(r, rng):
    r["title"], r["ingredients"] = r["title"].upper(), [i.upper() for i in r["ingredients"]]
    _shouted_steps(r, rng)


def _loud_word(r, rng):
    r["directions"][-1] += " Then EAT and ENJOY!!!!!!!"


def _decorated(r, rng):
    mark = rng.choice(["----------", "*~*~*~*~*", "==========", "__________", "**********"])
    r["ingredients"].insert(rng.randrange(len(r["ingredients"]) + 1), mark)
    r["title"] = f"{mark[:3]} {r['title']} {mark[:3]}"


def _leader_dots(r, rng):
    r["directions"][0] = r["directions"][0].replace(" ", " " + "." * rng.randint(4, 12) + " ", 1)


def _accented(r, rng):
    r["title"] = f"{rng.choice(ACCENTED)} {r['title']}"


def _mojibake(r, rng):
    wrong = rng.choice(["latin-1", "cp1252"])
    r["title"] = f"{rng.choice(ACCENTED)} {r['title']}".encode().decode(wrong, errors="ignore")
    r["directions"][0] = r["directions"][0].replace("'", "\u2019").encode().decode(wrong, errors="ignore")


def _stray_byte(r, rng):  # one latin-1 byte in a UTF-8 file: loading reads it as U+FFFD
    r["title"] = f"Cr\ufffdme {r['title']}"


def _whitespace(r, rng):
    r["directions"][0] = r["directions"][0].replace(" ", "\t", 1) + "\n"


def _minimal(r, rng):
    r["ingredients"], r["ner"] = rng.choice([["ice", "water"], ["1 egg"], ["tea", "milk"], ["oil"]]), []
    r["directions"] = [rng.choice(["Mix.", "Stir.", "Serve.", "Boil it.", "Eat."])]


def _stray_control(r, rng):  # a real recipe with one NUL, BEL or ESC: dropped by design (issue 14)
    r["directions"][0] = r["directions"][0] + rng.choice(["\x07", "\x00", "\x1b[0m"])


def _form_feed(r, rng):  # a page break left by a scraper: whitespace, kept
    r["directions"][0] = r["directions"][0] + "\x0c"


def _binary_title(r, rng):
    r["title"] = bytes(rng.randrange(256) for _ in range(rng.randint(8, 24))).decode("utf-8", "replace")
    r["ingredients"] = [rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))]
    r["directions"], r["ner"] = [rng.choice("xyz.-") for _ in range(rng.randint(1, 4))], []


def _binary_steps(r, rng):
    r["directions"] = [bytes(rng.randrange(256) for _ in range(40)).decode("utf-8", "replace")]


def _one_letter(r, rng):
    r["ingredients"] = [rng.choice(["a", "b", "x", "1", "-", "."]) for _ in range(rng.randint(1, 8))]
    r["ner"] = []


def _one_letter_steps(r, rng):
    r["directions"] = [rng.choice(["x", "a", "1.", "-", "?"]) for _ in range(rng.randint(1, 5))]


def _punctuation_title(r, rng):
    r["title"] = rng.choice(["!!!!!!!!", "........", "???", "-", "1"])


def _keyboard(r, rng):
    r["directions"][0] += " !@#$%^&*()"


REAL = {f.__name__.lstrip("_"): f for f in (
    _loud_title, _loud_step, _shouted_steps, _shouted_recipe, _loud_word, _decorated, _leader_dots,
    _accented, _mojibake, _stray_byte, _whitespace, _form_feed, _minimal, _stray_control,
)}  # fmt: skip
JUNK = {f.__name__.lstrip("_"): f for f in (
    _binary_title, _binary_steps, _one_letter, _one_letter_steps, _punctuation_title, _keyboard,
)}  # fmt: skip


def sample_recipes() -> list[dict]:
    with SAMPLE.open(newline="") as source:
        return [
            {"title": row["title"], **{k: json.loads(row[k]) for k in ("ingredients", "directions", "NER")}}
            for row in csv.DictReader(source)
        ]


def generated_rows(count: int, seed: int) -> list[tuple[str, RawRow]]:
    """(label, row): 3 real variants for each junk one, all titles distinct (no duplicate drops)."""
    rng = random.Random(seed)
    recipes = sample_recipes()
    kinds = [("real", name) for name in REAL] * 3 + [("junk", name) for name in JUNK]
    rows = []
    for k in range(count):
        group, name = rng.choice(kinds)
        recipe = json.loads(json.dumps(rng.choice(recipes)))
        recipe["ner"] = recipe.pop("NER")
        recipe["title"] = f"{recipe['title']} {k}"
        (REAL if group == "real" else JUNK)[name](recipe, rng)
        fields = {"title": recipe["title"], "NER": json.dumps(recipe["ner"])}
        fields |= {key: json.dumps(recipe[key]) for key in ("ingredients", "directions")}
        rows.append((f"{group}: {name}", RawRow("recipe", f"generated:{k}", fields)))
    return rows


def measure(labelled: list[tuple[str, RawRow]]) -> tuple[dict, dict, dict]:
    """({label: rows}, {reason: Counter(label)}, {repair kind: Counter(label)})."""
    cleaner = RecipeCleaner()
    totals: Counter = Counter()
    drops: dict[str, Counter] = defaultdict(Counter)
    repairs: dict[str, Counter] = defaultdict(Counter)
    for label, row in labelled:
        totals[label] += 1
        before = dict(cleaner.report["dropped"])
        recipe = cleaner.clean(row)
        if recipe is None:
            (reason,) = [r for r, n in cleaner.report["dropped"].items() if n != before.get(r, 0)]
            drops[reason][label] += 1
        else:
            for kind in recipe.extra.get("normalised", {}):
                repairs[kind][label] += 1
    return totals, drops, repairs, cleaner.report


def print_tables(title: str, totals: Counter, drops: dict, repairs: dict, report: dict) -> None:
    real = sum(n for label, n in totals.items() if not label.startswith("junk"))
    junk = sum(totals.values()) - real
    print(f"\n## {title}: {sum(totals.values())} rows ({real} real, {junk} junk)\n")
    print("| rule | real rows dropped | share of real rows | junk rows dropped | by label |")
    print("| --- | ---: | ---: | ---: | --- |")
    for reason, by_label in sorted(drops.items()):
        real_n = sum(n for label, n in by_label.items() if not label.startswith("junk"))
        detail = ", ".join(f"{label} {n}" for label, n in by_label.most_common())
        print(
            f"| drop: {reason} | {real_n} | {real_n / max(real, 1):.2%} | {sum(by_label.values()) - real_n} | {detail} |"
        )
    for kind, by_label in sorted(repairs.items()):
        detail = ", ".join(f"{label} {n}" for label, n in by_label.most_common())
        print(f"| kept, normalised: {kind} | 0 | 0.00% | - | {detail} |")
    print("\nrows per label: " + ", ".join(f"{label} {n}" for label, n in sorted(totals.items())))
    print("\nexamples:")
    for reason, examples in {**report["examples"], **report["normalised_examples"]}.items():
        for example in examples[:2]:
            print(f"  {reason}: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    sample = [("real: sample as is", row) for row in iter_raw_rows(SAMPLE)]
    print_tables("bundled sample (examples/data/recipenlg_sample_999.csv)", *measure(sample))
    print_tables("generated from the sample", *measure(generated_rows(args.rows, args.seed)))


if __name__ == "__main__":
    main()
