"""Benchmark: does the recipe score separate a real recipe from a subtly broken copy of it?

    .venv/bin/python bench/quality_metric.py                 # held-out half of the bundled sample
    .venv/bin/python bench/quality_metric.py --half tune     # the half the score was designed on
    .venv/bin/python bench/quality_metric.py --fit-step-positions  # refit the learned order table

Builds a labelled set from real RecipeNLG recipes (the bundled 999-recipe sample, cleaned as the
pipeline cleans it) and seeded, corrupted copies of them, one corruption type at a time, and
reports per type the AUC of `recipe_quality(...)["overall"]` for real vs corrupted (1.0: every
real recipe scores above every corrupted one; 0.5: no better than a coin; ties count half), the
score's spread on the real recipes, and its cost per recipe.

The sample is split in two halves by the pipeline's own stable split position: the score's rules
were written looking at the "tune" half only, the table in docs/benchmarks.md is the "held-out"
half. A corruption that does not apply to a recipe (no oven temperature to make absurd, a single
step to shuffle) skips it; the skips are counted in the table, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from recipe_api.v1alpha1 import QualityThreshold
from recipe_trainer import step_positions
from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.formatting import format_target
from recipe_trainer.data.loading import iter_raw_rows
from recipe_trainer.data.scoring import quality_score
from recipe_trainer.data.split import split_position
from recipe_trainer.plausibility import normalized_step_words
from recipe_trainer.quality import recipe_quality
from recipe_trainer.recipe_text import has_unit, ingredient_names, parse_recipe_text, singular, words

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "recipenlg_sample_999.csv"
README_EXAMPLE = """Title: Chicken And Rice
Ingredients:
- 1 c. eggs
- 1 c. Frango
- 1 c. rice
- 1 c. water
Steps:
1. Mix all ingredients together.
2. Bake at 350° for 20 minutes.
3. Serve hot."""

Parts = tuple[str, list[str], list[str]]  # title, ingredient lines, steps
# A corruption: (the recipe, every other recipe, rng) -> corrupted parts, or None if it does not apply.
Corruption = Callable[[Parts, list[Parts], random.Random], "Parts | None"]

_NUMBER = re.compile(r"^\s*(\d+(?:\s+\d+/\d+|/\d+|\.\d+)?)")
# A leading amount: numbers, fractions, "(8 oz.)" and unit words, e.g. "1 (8 oz.) pkg. " or "2 c. ".
_AMOUNT = re.compile(
    r"^(?:\s*(?:[\d/.½¼¾-]+|\([^)]*\)|(?:c|cups?|tbsp|tsp|lbs?|oz|pkg|pkgs|cans?|qt|pt)\.?)(?=\s|$))+\s*",
    re.I,
)
_TEMPERATURE = re.compile(r"\b(\d{3})(\s*°|\s*degrees?\b)", re.I)
_TIME = re.compile(r"\b(\d{1,3})(\s*(?:to\s*\d+\s*)?(?:minutes?|mins?|hours?|hrs?)\b)", re.I)
_VOLUME = re.compile(r"^\s*([\d/ .]+)\s*(c\.|cups?|tbsp\.?|tsp\.?|tablespoons?|teaspoons?)\s", re.I)


def shuffled_steps(parts: Parts, others, rng) -> Parts | None:
    title, ingredients, steps = parts
    if len(set(steps)) < 2:
        return None
    order = steps[:]
    while order == steps:
        rng.shuffle(order)
    return title, ingredients, order


def foreign_steps(parts: Parts, others, rng) -> Parts | None:
    title, ingredients, steps = parts
    other = rng.choice([o for o in others if o[2] != steps])
    return title, ingredients, other[2]


def ingredient_missing(parts: Parts, others, rng) -> Parts | None:
    """An ingredient the steps use, dropped from the list."""
    title, ingredients, steps = parts
    step_words = {singular(w) for s in steps for w in words(s)}
    used = [i for i, line in enumerate(ingredients) if ingredient_names(line) & step_words]
    if len(ingredients) < 3 or not used:
        return None
    drop = rng.choice(used)
    return title, [line for i, line in enumerate(ingredients) if i != drop], steps


def ingredient_unused(parts: Parts, others, rng) -> Parts | None:
    """The reverse: an ingredient line of another recipe, never named in the steps."""
    title, ingredients, steps = parts
    text_words = {singular(w) for s in (*steps, *ingredients, title) for w in words(s)}
    candidates = [
        line
        for other in others
        for line in other[1]
        if len(ingredient_names(line)) >= 1 and not ingredient_names(line) & text_words
    ]
    if not candidates:
        return None
    new = ingredients[:]
    new.insert(rng.randrange(len(new) + 1), rng.choice(candidates))
    return title, new, steps


_COUNTABLE_LINE = re.compile(r"^\s*(\d+(?:/\d+)?)\s+(?!c\.|cups?\b)([a-z]+)", re.I)


def countable_in_cups(parts: Parts, others, rng) -> Parts | None:
    """Countable items measured in cups: "2 eggs" -> "2 c. eggs"."""
    title, ingredients, steps = parts
    lines = [i for i, line in enumerate(ingredients) if _COUNTABLE_LINE.match(line) and not has_unit(line)]
    if not lines:
        return None
    new = ingredients[:]
    for i in lines:
        new[i] = _COUNTABLE_LINE.sub(lambda m: f"{m.group(1)} c. {m.group(2)}", new[i], count=1)
    return title, new, steps


def identical_quantities(parts: Parts, others, rng) -> Parts | None:
    """Every ingredient "1 c. <name>", as the README's tuned model wrote."""
    title, ingredients, steps = parts
    if len(ingredients) < 3:
        return None
    return title, ["1 c. " + (_AMOUNT.sub("", line) or line) for line in ingredients], steps


def absurd_quantity(parts: Parts, others, rng) -> Parts | None:
    """One measured ingredient a hundred times too much: "3 c. flour" -> "350 c. flour"."""
    title, ingredients, steps = parts
    lines = [i for i, line in enumerate(ingredients) if _VOLUME.match(line)]
    if not lines:
        return None
    i = rng.choice(lines)
    new = ingredients[:]
    new[i] = _VOLUME.sub(lambda m: f"{rng.choice((150, 250, 350, 500))} {m.group(2)} ", new[i], count=1)
    return title, new, steps


def absurd_temperature(parts: Parts, others, rng) -> Parts | None:
    title, ingredients, steps = parts
    hits = [i for i, s in enumerate(steps) if _TEMPERATURE.search(s)]
    if not hits:
        return None
    new = steps[:]
    i = rng.choice(hits)
    new[i] = _TEMPERATURE.sub(lambda m: f"{rng.choice((35, 1200, 3500, 9000))}{m.group(2)}", new[i], count=1)
    return title, ingredients, new


def absurd_time(parts: Parts, others, rng) -> Parts | None:
    """A time no recipe means: "bake 30 minutes" -> "bake 1500 minutes", "1 hour" -> "300 hour"."""
    title, ingredients, steps = parts
    hits = [i for i, s in enumerate(steps) if _TIME.search(s)]
    if not hits:
        return None
    new = steps[:]
    i = rng.choice(hits)

    def absurd(match: re.Match) -> str:
        hours = match.group(2).strip().lower().startswith("h")
        return f"{rng.choice((150, 300, 800) if hours else (900, 1500, 3000))}{match.group(2)}"

    new[i] = _TIME.sub(absurd, new[i], count=1)
    return title, ingredients, new


def repeated_step(parts: Parts, others, rng) -> Parts | None:
    title, ingredients, steps = parts
    i = rng.randrange(len(steps))
    return title, ingredients, steps[: i + 1] + [steps[i]] + steps[i + 1 :]


def cut_mid_step(parts: Parts, others, rng) -> Parts | None:
    """The text stops inside a step, not after a sentence."""
    title, ingredients, steps = parts
    i = rng.randrange(len(steps))
    tokens = steps[i].split()
    cuts = [k for k in range(2, len(tokens)) if tokens[k - 1][-1:] not in ".!?)"]
    if not cuts:
        return None
    return title, ingredients, steps[:i] + [" ".join(tokens[: rng.choice(cuts)])]


def prose(parts: Parts, others, rng) -> Parts | None:
    """The recipe told as one paragraph: no ingredient list, no numbered steps."""
    title, ingredients, steps = parts
    story = f"{title} is a family favourite. You will need {', '.join(ingredients)}. " + " ".join(steps)
    return title, [], [story]


def other_title(parts: Parts, others, rng) -> Parts | None:
    """The recipe under another dish's title."""
    title, ingredients, steps = parts
    mine = {singular(w) for w in words(title)}
    candidates = [o[0] for o in others if not mine & {singular(w) for w in words(o[0])}]
    return rng.choice(candidates), ingredients, steps


CORRUPTIONS: dict[str, Corruption] = {
    "steps shuffled": shuffled_steps,
    "steps of another recipe": foreign_steps,
    "used ingredient missing from list": ingredient_missing,
    "listed ingredient never used": ingredient_unused,
    "countable items in cups": countable_in_cups,
    "every quantity '1 c.'": identical_quantities,
    "one quantity x100 ('350 c. flour')": absurd_quantity,
    "oven temperature absurd": absurd_temperature,
    "time absurd": absurd_time,
    "a step repeated": repeated_step,
    "cut mid-step": cut_mid_step,
    "prose, not a recipe": prose,
    "title of another dish": other_title,
}


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(real > corrupted), ties half (Mann-Whitney U / n1 n2)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def load_recipes(path: Path, half: str) -> list[Parts]:
    recipes, _ = clean_recipes(iter_raw_rows(path))
    keep = (lambda p: p >= 0.5) if half == "held-out" else (lambda p: p < 0.5)
    return [(r.title, list(r.ingredients), list(r.directions)) for r in recipes if keep(split_position(r))]


def admitted_table(path: Path) -> str:
    """What the data pipeline's score (`data.scoring.quality_score`) admits at each threshold,
    the defaults (`QualityThreshold`) marked: the curriculum's filter at its start and end."""
    recipes = list(clean_recipes(iter_raw_rows(path))[0])
    started = time.perf_counter()
    scores = [quality_score(r) for r in recipes]
    per_recipe_ms = (time.perf_counter() - started) / len(recipes) * 1000
    defaults = QualityThreshold()
    lines = [
        f"clean recipes: {len(recipes)}; {per_recipe_ms:.2f} ms per recipe",
        "",
        "| threshold | admitted | share |",
        "|---|---|---|",
    ]
    for threshold in sorted({0.1, 0.2, 0.5, 0.75, defaults.start, defaults.end}):
        admitted = sum(score >= threshold for score in scores)
        mark = " (default start)" if threshold == defaults.start else ""
        mark += " (default end)" if threshold == defaults.end else ""
        lines.append(f"| {threshold}{mark} | {admitted} | {admitted / len(scores):.1%} |")
    return "\n".join(lines)


def text_of(parts: Parts) -> str:
    return format_target(*parts)


def fitted_step_positions(path: Path) -> dict:
    """The learned order table (`recipe_trainer.step_positions`) fitted on the tune half only, the
    steps read as the score reads them (formatted, parsed, normalized)."""
    recipes = load_recipes(path, "tune")
    steps = [normalized_step_words(parse_recipe_text(text_of(parts)).steps) for parts in recipes]
    return {
        "fitted_on": f"the tune half of {path.name} ({len(recipes)} recipes), "
        "by bench/quality_metric.py --fit-step-positions",
        "prior_count": step_positions.PRIOR_COUNT,
        "positions": step_positions.fit(steps),
    }


def measure(recipes: list[Parts], seed: int) -> dict:
    started = time.perf_counter()
    real = [recipe_quality(text_of(p))["overall"] for p in recipes]
    per_recipe_ms = (time.perf_counter() - started) / len(recipes) * 1000
    quantiles = statistics.quantiles(real, n=20)
    result = {
        "real": {
            "n": len(real),
            "median": statistics.median(real),
            "p5": quantiles[0],
            "p25": quantiles[4],
            "p75": quantiles[14],
            "min": min(real),
            "ms_per_recipe": per_recipe_ms,
        },
        "readme_1c_example": recipe_quality(README_EXAMPLE)["overall"],
        "types": {},
    }
    for name, corrupt in CORRUPTIONS.items():
        rng = random.Random(f"{seed}:{name}")
        scored, skipped = [], 0
        for k, parts in enumerate(recipes):
            others = recipes[:k] + recipes[k + 1 :]
            broken = corrupt((parts[0], list(parts[1]), list(parts[2])), others, rng)
            if broken is None:
                skipped += 1
                continue
            scored.append(recipe_quality(text_of(broken))["overall"])
        result["types"][name] = {
            "auc": auc(real, scored),
            "median": statistics.median(scored),
            "n": len(scored),
            "skipped": skipped,
        }
    return result


def table(result: dict) -> str:
    real = result["real"]
    lines = [
        f"real recipes: {real['n']}, median {real['median']:.3f}, p5 {real['p5']:.3f}, "
        f"p25 {real['p25']:.3f}, p75 {real['p75']:.3f}, min {real['min']:.3f}; "
        f"{real['ms_per_recipe']:.3f} ms per recipe; README '1 c. eggs' recipe: {result['readme_1c_example']:.3f}",
        "",
        "| corruption | AUC real vs corrupted | corrupted median | corrupted copies | skipped (n/a) |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["types"].items():
        lines.append(f"| {name} | {row['auc']:.3f} | {row['median']:.3f} | {row['n']} | {row['skipped']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=SAMPLE, help="RecipeNLG CSV (default: the bundled sample)"
    )
    parser.add_argument("--half", choices=("held-out", "tune"), default="held-out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--admitted",
        action="store_true",
        help="instead: the share of all clean recipes the curriculum's quality filter admits per threshold",
    )
    parser.add_argument(
        "--fit-step-positions",
        action="store_true",
        help=f"instead: fit the learned step-order table on the tune half and write {step_positions.TABLE_FILE.name}",
    )
    args = parser.parse_args()
    if args.fit_step_positions:
        fitted = fitted_step_positions(args.data)
        rows = ",\n".join(f"  {json.dumps(w)}: {json.dumps(v)}" for w, v in fitted.pop("positions").items())
        header = json.dumps(fitted, indent=1)[:-2]  # one word per line below: readable diffs
        step_positions.TABLE_FILE.write_text(f'{header},\n "positions": {{\n{rows}\n }}\n}}\n')
        print(f"wrote {rows.count(chr(10)) + 1} words to {step_positions.TABLE_FILE}")
        return
    if args.admitted:
        print(admitted_table(args.data))
        return
    result = measure(load_recipes(args.data, args.half), args.seed)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
