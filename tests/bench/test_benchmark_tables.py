"""Tables in docs/benchmarks.md that a script writes match the script: each `<!-- NAME:start -->`
section is written by bench/NAME.py (which holds that marker), and the ablation table's rows are
exactly the configurations bench/ablation.py runs today (a row the script no longer produces, or a
configuration missing from the table, fails). A record of an older run lives outside the markers,
under a heading that says it is historical."""

from __future__ import annotations

import re
from pathlib import Path

from bench_scripts import load_bench_script

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
RULE = re.compile(r"\|[-| :]+\|")
MARKER = re.compile(r"<!-- ([a-z0-9_-]+):start -->\n(.*?)<!-- \1:end -->", re.S)


def table_rows(text: str) -> list[str]:
    """First cells of the body rows of every Markdown table in `text` (header and rule skipped)."""
    rows, in_body = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_body = False
        elif RULE.fullmatch(line):
            in_body = True
        elif in_body:
            rows.append(line.split("|")[1].strip())
    return rows


def sections() -> dict[str, str]:
    return dict(MARKER.findall(BENCHMARKS.read_text()))


def ablation_rows_expected() -> list[str]:
    return ["base model (untrained)", *load_bench_script("ablation").configurations()]


def test_every_marked_section_is_written_by_the_script_of_that_name():
    found = sections()
    assert found, "docs/benchmarks.md has no script-written section"
    for name in found:
        script = ROOT / "bench" / f"{name}.py"
        assert script.is_file(), f"<!-- {name}:start --> names no bench/{name}.py"
        module = load_bench_script(name)
        assert (f"<!-- {name}:start -->", f"<!-- {name}:end -->") == (module.START, module.END)


def test_the_ablation_table_has_exactly_the_scripts_configurations():
    section = sections()["ablation"]
    rows = table_rows(section)
    if rows:
        assert rows == ablation_rows_expected()
    else:  # no run of the current list yet: the section must say so, not show an old table
        assert "Not yet run with the script's current configuration list" in section


def test_the_historical_ablation_run_is_marked_as_such_and_would_fail_the_check():
    """The check above is not vacuous: the 2026-12-01 table, kept outside the markers as a record,
    has the removed "gradient noise off" row and lacks the current noise row."""
    text = BENCHMARKS.read_text()
    historical = text.split("### Historical: the 2026-12-01 run of the previous configuration list", 1)[1]
    rows = table_rows(historical.split("\n## ", 1)[0])
    expected = ablation_rows_expected()
    assert "gradient noise off" in rows and "gradient noise off" not in expected
    assert "gradient noise on (eta 0.03)" in expected and "gradient noise on (eta 0.03)" not in rows


def test_table_rows_reads_first_cells_of_body_rows_only():
    text = "intro\n\n| a | b |\n|---|---|\n| x | 1 |\n| y | 2 |\n\nafter\n"
    assert table_rows(text) == ["x", "y"]
