"""The data a newcomer already has, through the real `recipe-train data inspect`: RecipeNLG CSV with
or without NER, JSON lines of recipes, of prompt/completion pairs and of chat messages, Parquet; the
format said on the first line; a file in no format, or with no usable row, refused in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from recipe_trainer.cli import main

from ..conftest import SAMPLE_CSV

TEA = "Title: Tea\nIngredients:\n- 1 tea bag\n- 1 c. hot water\nSteps:\n1. Steep the tea bag in the water."


def _sample_recipes(n: int = 4) -> list[dict]:
    with open(SAMPLE_CSV, newline="") as stream:
        rows = list(csv.DictReader(stream))[:n]
    return [
        {
            "title": r["title"],
            "ingredients": json.loads(r["ingredients"]),
            "directions": json.loads(r["directions"]),
        }
        for r in rows
    ]


def _write_csv_without_ner(path):
    with open(SAMPLE_CSV, newline="") as source, open(path, "w", newline="") as target:
        rows = list(csv.reader(source))[:5]
        writer = csv.writer(target)
        for row in rows:
            writer.writerow(row[1:6])  # no index, no NER


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _write_parquet(path, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)


def _inspect_json(path, capsys, *extra) -> dict:
    assert main(["data", "inspect", str(path), "--json", "--samples", "1", *extra]) == 0, (
        capsys.readouterr().err
    )
    return json.loads(capsys.readouterr().out)


def test_csv_without_ner_derives_the_ingredient_names_and_counts_it(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    _write_csv_without_ner(path)
    summary = _inspect_json(path, capsys)
    assert summary["format"].startswith("RecipeNLG CSV without NER")
    assert summary["report"]["kept"] == 4 and summary["report"]["dropped"] == {}
    assert summary["report"]["normalised"] == {"ingredient names derived": 4}
    # "1 c. firmly packed brown sugar", "1/2 c. butter or margarine": names as RecipeNLG's NER has them
    assert "Ingredients: brown sugar, evaporated milk, vanilla" in summary["samples"][0]["source"]
    assert ", butter," in summary["samples"][0]["source"]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_recipe_records_with_and_without_ner(tmp_path, capsys, suffix):
    records = _sample_recipes()
    records[0]["NER"] = ["brown sugar", "milk"]  # given where present, derived where not
    path = tmp_path / f"mine.{suffix}"
    (_write_jsonl if suffix == "jsonl" else _write_parquet)(path, records)
    summary = _inspect_json(path, capsys)
    assert summary["format"] == ("JSON lines" if suffix == "jsonl" else "Parquet") + " of recipe records"
    assert summary["report"]["kept"] == 4
    assert summary["report"]["normalised"] == {"ingredient names derived": 3}
    assert summary["samples"][0]["source"].endswith("Ingredients: brown sugar, milk.")
    assert summary["samples"][0]["target"].startswith("Title: No-Bake Nut Cookies\nIngredients:\n- 1 c.")


@pytest.mark.parametrize(
    ("suffix", "record", "kind", "prompt"),
    [
        ("jsonl", {"prompt": "Write a recipe for tea.", "completion": TEA}, "prompt/completion pairs",
         "Write a recipe for tea."),
        ("jsonl", {"messages": [{"role": "system", "content": "You are a chef."},
                                {"role": "user", "content": "Write a recipe for tea."},
                                {"role": "assistant", "content": TEA}]},
         "chat messages", "You are a chef.\nWrite a recipe for tea."),
        ("parquet", {"prompt": "Write a recipe for tea.", "completion": TEA}, "prompt/completion pairs",
         "Write a recipe for tea."),
    ],
)  # fmt: skip
def test_pairs_and_chat_messages_pass_through_as_pairs(tmp_path, capsys, suffix, record, kind, prompt):
    path = tmp_path / f"pairs.{suffix}"
    (_write_jsonl if suffix == "jsonl" else _write_parquet)(path, [record])
    summary = _inspect_json(path, capsys)
    assert kind in summary["format"]
    assert summary["report"]["kept"] == 1
    assert summary["samples"][0]["source"] == prompt and summary["samples"][0]["target"] == TEA


def test_the_first_line_of_the_table_says_the_format(tmp_path, capsys):
    assert main(["data", "inspect", str(SAMPLE_CSV), "--samples", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{SAMPLE_CSV}: RecipeNLG CSV"


@pytest.mark.parametrize(
    ("name", "content", "found"),
    [
        ("empty.csv", b"", "is empty (0 bytes)"),
        ("array.json", b'[{"title": "Tea"}]\n', "holds a JSON array"),
        ("other.csv", b"name,amount\ntea,1\n", "a CSV header with columns name, amount"),
        ("keys.jsonl", b'{"question": "q", "answer": "a"}\n', "records with keys answer, question"),
        ("pretty.json", b'{\n  "title": "Tea"\n}\n', "no complete JSON object"),
        ("archive.csv", b"PK\x03\x04\x00\x00\x00binary", "binary data"),
    ],
)
def test_a_file_in_no_accepted_format_is_refused_in_one_line_naming_what_it_holds(
    tmp_path, capsys, name, content, found
):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["data", "inspect", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert found in line and str(path) in line


def test_no_kept_row_exits_non_zero_naming_the_top_reason_and_an_example_row(tmp_path, capsys):
    path = tmp_path / "nested" / ("a-rather-long-folder-name-" * 3) / "mine.jsonl"
    path.parent.mkdir(parents=True)
    bad = {"title": "Tea", "ingredients": "1 tea bag", "directions": ["Steep."]}  # not a list
    _write_jsonl(path, [bad, bad, {"title": "Soup", "ingredients": ["water"]}])
    assert main(["data", "inspect", str(path), "--samples", "0"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert "3 read, 2 dropped as 'unparseable ingredients'" in line
    assert f"e.g. {path}:1: 1 tea bag" in line


def test_a_header_only_csv_is_called_empty(tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text(SAMPLE_CSV.read_text().splitlines()[0] + "\n")
    assert main(["data", "inspect", str(path), "--json"]) == 1
    assert "holds no rows (a header or blank lines only)" in capsys.readouterr().err


def test_the_drop_table_keeps_file_and_line_whole_at_80_columns(tmp_path):
    path = tmp_path / ("a-rather-long-folder-name-" * 2) / "recipes.csv"
    path.parent.mkdir()
    lines = SAMPLE_CSV.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[2] + "99,Too short,x\n")
    result = subprocess.run(
        [sys.executable, "-m", "recipe_trainer.cli", "data", "inspect", str(path), "--samples", "0"],
        capture_output=True, text=True, env={**_env(), "COLUMNS": "80"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    # the examples column, its folded pieces put back together, holds every file:line whole
    cells = "".join(line.rstrip().rstrip("│").split("│")[-1].strip() for line in result.stdout.splitlines())
    assert f"{path}:5" in cells and f"{path}:6" in cells


def test_inspect_json_into_a_closed_pipe_ends_quietly():
    command = [sys.executable, "-m", "recipe_trainer.cli", "data", "inspect", str(SAMPLE_CSV), "--json",
               "--samples", "500"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert process.stdout.readline().strip() == b"{"
    process.stdout.close()  # what `| head -1` does after its line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0 and err == b"", err.decode()


def _env() -> dict:
    import os

    return dict(os.environ)
