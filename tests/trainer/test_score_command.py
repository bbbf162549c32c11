"""`recipe-train score` through the real console entry point: the bundled RecipeNLG sample and a
JSON-lines file, with bad lines reported by number while the good ones are still scored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from recipe_trainer.quality import recipe_quality

SAMPLE = Path(__file__).parents[2] / "examples" / "data" / "recipenlg_sample_999.csv"
GOOD = "Title: Toast\nIngredients:\n- 2 slices bread\n- 1 tbsp. butter\nSteps:\n1. Toast the bread.\n2. Spread with butter."


def score(path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recipe_trainer.cli", "score", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_bundled_sample_scores_every_recipe_with_every_sub_score():
    done = score(SAMPLE)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 999
    assert rows[0]["line"] == 2 and rows[1]["line"] == 3  # file lines, after the header
    assert {"overall", "form", "quantities", "step_order", "prompt_adherence"} <= set(rows[0])
    assert "999 recipes scored, 0 lines with errors" in done.stderr
    assert next(line for line in done.stderr.splitlines() if line.startswith("overall"))


def test_json_lines_with_and_without_prompt_and_bad_lines_named(tmp_path):
    prompt = "Write a recipe for Toast. Ingredients: bread, butter, jam."
    lines = [
        json.dumps({"prompt": prompt, "text": GOOD}),
        "{not json",
        json.dumps({"txt": GOOD}),
        "",
        json.dumps({"text": GOOD}),
    ]
    file = tmp_path / "generated.jsonl"
    file.write_text("\n".join(lines) + "\n")
    done = score(file)
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 5]
    assert rows[0] == {"line": 1, **recipe_quality(GOOD, prompt)}
    assert rows[0]["prompt_adherence"] < 1.0  # jam was asked for, never used
    assert "prompt_adherence" not in rows[1]
    errors = [line for line in done.stderr.splitlines() if line.startswith("recipe-train score:")]
    assert errors == [
        f"recipe-train score: {file}:2: not JSON (Expecting property name enclosed in double quotes); write one object per line",
        f'recipe-train score: {file}:3: needs a "text" string (and optionally "prompt"), e.g. {{"text": "Title: ..."}}',
    ]
    assert "2 recipes scored, 2 lines with errors" in done.stderr


def test_a_csv_with_a_broken_list_cell_names_its_line(tmp_path):
    file = tmp_path / "recipes.csv"
    file.write_text(
        "title,ingredients,directions\n"
        'Toast,"[""2 slices bread""]","[""Toast the bread.""]"\n'
        'Broken,"[""1 c. sugar""","[""Mix.""]"\n'
    )
    done = score(file)
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 1
    assert f"{file}:3: unparseable ingredients: write it as a JSON list" in done.stderr


def test_bytes_that_are_not_utf8_name_their_line_and_the_rest_is_scored(tmp_path):
    """A `text`-column CSV and a JSON-lines file, each with one line of Latin-1 bytes."""
    jsonl = tmp_path / "generated.jsonl"
    jsonl.write_bytes(json.dumps({"text": GOOD}).encode() + b'\n{"text": "Cr\xe8me"}\n')
    done = score(jsonl)
    assert done.returncode == 1 and len(done.stdout.splitlines()) == 1
    assert f"{jsonl}:2: not UTF-8 (byte 13 of the line); save the file as UTF-8" in done.stderr
    table = tmp_path / "texts.csv"
    table.write_bytes(b'text\n"Title: Cr\xe8me"\n"' + GOOD.encode() + b'"\n')
    done = score(table)
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [{"line": 3, **recipe_quality(GOOD)}]
    assert f"{table}:2: not UTF-8; save the file as UTF-8" in done.stderr
