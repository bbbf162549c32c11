"""Issue 23, finding 9: one dataset line could end a run. 200k-deep JSON raised RecursionError
(not caught), and a multi-GB line was read whole (CSV field limit 2^31, JSON lines unbounded).
Every such line is now a counted drop, and no line is read past MAX_LINE_CHARS."""

from __future__ import annotations

import json

from recipe_trainer.data.cleaning import MALFORMED, DropReport, Rejected, prepare_row
from recipe_trainer.data.loading import MAX_LINE_CHARS, iter_raw_rows

RECIPE = {"title": "Good", "ingredients": ["1 c. a"], "directions": ["Mix it."], "NER": ["a"]}
DEEP = "[" * 200_000 + "]" * 200_000
CSV_HEADER = "title,ingredients,directions,link,source,NER\n"
CSV_GOOD = 'Good,"[""1 c. a""]","[""Mix it.""]",l,s,"[""a""]"\n'


def test_deep_huge_and_overlong_json_lines_are_malformed_rows_and_reading_goes_on(tmp_path):
    path = tmp_path / "hostile.jsonl"
    overlong = json.dumps({**RECIPE, "title": "x" * (3 * MAX_LINE_CHARS)})
    lines = [json.dumps(RECIPE), DEEP, "9" * 5000, overlong, json.dumps({**RECIPE, "title": "Last"})]
    path.write_text("\n".join(lines) + "\n")
    rows = list(iter_raw_rows(path, "jsonl"))
    assert [(r.kind, r.where.rsplit(":", 1)[1]) for r in rows] == [
        ("recipe", "1"),
        ("malformed", "2"),
        ("malformed", "3"),
        ("malformed", "4"),
        ("recipe", "5"),
    ]
    assert "nested too deeply" in rows[1].error and "invalid JSON" in rows[2].error
    assert f"over {MAX_LINE_CHARS} characters" in rows[3].error
    report = DropReport()
    for row in rows:
        result = prepare_row(row)
        if isinstance(result, Rejected):
            report.drop(result)
    assert report["dropped"] == {MALFORMED: 3}


def test_an_overlong_csv_line_and_a_too_deep_list_cell_are_counted_drops(tmp_path):
    path = tmp_path / "hostile.csv"
    deep_cell = '"' + DEEP + '"'
    path.write_text(
        CSV_HEADER
        + CSV_GOOD
        + "Long," + "y" * (2 * MAX_LINE_CHARS) + ",d,l,s,n\n"
        + f"Deep,{deep_cell},\"[\"\"Mix.\"\"]\",l,s,\"[\"\"a\"\"]\"\n"
        + CSV_GOOD
    )  # fmt: skip
    rows = list(iter_raw_rows(path))
    assert [(r.kind, r.where.rsplit(":", 1)[1]) for r in rows] == [
        ("recipe", "2"),
        ("malformed", "3"),
        ("recipe", "4"),
        ("recipe", "5"),
    ]
    assert f"over {MAX_LINE_CHARS} characters" in rows[1].error
    deep = prepare_row(rows[2])
    assert isinstance(deep, Rejected) and deep.reason == "unparseable ingredients"
    assert len(deep.excerpt) <= 200
