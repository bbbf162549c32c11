"""Loading streams every row of RecipeNLG CSV and JSONL files, and a broken line never stops it."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from recipe_trainer.data.loading import MAX_RECORD_LINES, iter_raw_rows

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"

GOOD = ',title,ingredients,directions,link,source,NER\n0,Good,"[""1 c. a""]","[""Mix it.""]",l,s,"[""a""]"\n'


def test_sample_csv_with_index_column_streams_every_recipe():
    rows = list(iter_raw_rows(SAMPLE))
    assert len(rows) == 999 and {r.kind for r in rows} == {"recipe"}
    first = rows[0]
    assert first.fields["title"] == "No-Bake Nut Cookies"
    assert first.where == f"{SAMPLE}:2"
    assert json.loads(first.fields["ingredients"])[0] == "1 c. firmly packed brown sugar"
    assert "" not in first.fields  # the unnamed index column is not a field


def test_csv_without_index_column_reads_the_same_recipes(tmp_path):
    plain = tmp_path / "plain.csv"
    with open(SAMPLE, newline="") as source, open(plain, "w", newline="") as target:
        writer = csv.writer(target)
        for cells in csv.reader(source):
            writer.writerow(cells[1:])
    with_index = [r.fields for r in iter_raw_rows(SAMPLE)]
    without = [r.fields for r in iter_raw_rows(plain)]
    assert without == with_index


def test_malformed_csv_lines_are_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        GOOD
        + '1,Broken quote,"[""1 c. a""]","[""Mix it.""],l,s,"[""a""]"\n'
        + '2,Also Good,"[""1 c. b""]","[""Stir it.""]",l,s,"[""b""]"\n'
        + "3,Too short,x\n"
        + '4,Last,"[""1 c. c""]","[""Bake it.""]",l,s,"[""c""]"\n'
    )
    rows = list(iter_raw_rows(path))
    assert [(r.kind, r.fields.get("title")) for r in rows] == [
        ("recipe", "Good"),
        ("malformed", None),
        ("recipe", "Also Good"),
        ("malformed", None),
        ("recipe", "Last"),
    ]
    assert rows[1].where.endswith(":3") and "cells" in rows[1].error
    assert rows[3].where.endswith(":5") and "3 cells where the header has 7" in rows[3].error


def test_an_unclosed_quote_costs_one_line_not_the_rest_of_the_file(tmp_path):
    path = tmp_path / "unclosed.csv"
    lines = [f"{i},Plain {i},[],[],l,s,[]\n" for i in range(MAX_RECORD_LINES + 10)]
    path.write_text(GOOD + '9,"Unclosed,[],[],l,s,[]\n' + "".join(lines))
    rows = list(iter_raw_rows(path))
    titles = [r.fields["title"] for r in rows if r.kind == "recipe"]
    assert titles == ["Good"] + [f"Plain {i}" for i in range(MAX_RECORD_LINES + 10)]
    assert [r.where for r in rows if r.kind == "malformed"] == [f"{path}:3"]


def test_jsonl_recipes_pairs_and_broken_lines(tmp_path):
    path = tmp_path / "recipes.jsonl"
    path.write_text(
        json.dumps(
            {
                "title": "Toast",
                "ingredients": ["1 slice bread"],
                "directions": ["Toast it."],
                "ner": ["bread"],
            }
        )
        + "\n{not json\n\n[1, 2]\n"
        + json.dumps({"input": "Write a recipe for tea.", "output": "Title: Tea"})
        + "\n"
    )
    rows = list(iter_raw_rows(path))
    assert [r.kind for r in rows] == ["recipe", "malformed", "malformed", "pair"]
    assert rows[0].fields["NER"] == ["bread"]  # "ner" accepted as RecipeNLG's NER
    assert "invalid JSON" in rows[1].error and rows[1].where.endswith(":2")
    assert "list" in rows[2].error and rows[2].where.endswith(":4")
    assert rows[3].fields == {"input": "Write a recipe for tea.", "output": "Title: Tea"}


def test_directory_reads_data_files_in_sorted_order_including_gzip(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.csv").write_text(GOOD)
    with gzip.open(tmp_path / "b" / "c.jsonl.gz", "wt") as stream:
        stream.write(json.dumps({"title": "Zipped", "ingredients": [], "directions": []}) + "\n")
    (tmp_path / "README.md").write_text("not data")
    titles = [r.fields["title"] for r in iter_raw_rows(tmp_path)]
    assert titles == ["Good", "Zipped"]


def test_missing_path_names_the_field_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.path"):
        list(iter_raw_rows(tmp_path / "nowhere.csv"))
