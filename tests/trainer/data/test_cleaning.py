"""Cleaning keeps real recipes, normalises their text, and counts every dropped row by reason."""

from __future__ import annotations

import json
from pathlib import Path

from recipe_trainer.data.cleaning import clean_recipes
from recipe_trainer.data.loading import RawRow, iter_raw_rows

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


def row(title="Creamy Corn", ingredients=None, directions=None, ner=None, where="t.csv:2") -> RawRow:
    """A CSV-shaped row: list columns as JSON text, as RecipeNLG stores them."""
    fields = {
        "title": title,
        "ingredients": json.dumps(
            ["2 (16 oz.) pkg. frozen corn", "1/2 tsp. salt"] if ingredients is None else ingredients
        ),
        "directions": json.dumps(["In a slow cooker, combine all ingredients.", "Cook on low for 4 hours."])
        if directions is None
        else directions,
        "NER": json.dumps(["frozen corn", "salt"] if ner is None else ner),
    }
    return RawRow("recipe", where, fields)


def clean(rows):
    recipes, report = clean_recipes(rows)
    return list(recipes), report


def test_sample_rows_are_all_accounted_for():
    recipes, report = clean(iter_raw_rows(SAMPLE))
    assert report["rows"] == 999
    assert report["kept"] == len(recipes) and report["kept"] + report.dropped_total == 999
    assert len(recipes) > 990  # the sample is real, clean RecipeNLG
    first = recipes[0]
    assert first.title == "No-Bake Nut Cookies" and first.ingredients[0] == "1 c. firmly packed brown sugar"
    assert first.ner[0] == "brown sugar" and first.row == f"{SAMPLE}:2"
    assert json.loads(json.dumps(report)) == report  # the report goes to JSON as it is


def test_exact_and_near_duplicates_are_dropped_first_one_kept():
    original = row(where="t.csv:2")
    same_but_spacing = row(title="  creamy   CORN ", where="t.csv:3")
    near = row(
        title="Creamy Corn!", directions=json.dumps(["Mix everything.", "Bake 1 hour."]), where="t.csv:4"
    )
    other = row(ingredients=["1 can corn", "2 Tbsp. butter"], ner=["corn", "butter"], where="t.csv:5")
    recipes, report = clean([original, same_but_spacing, near, other])
    assert [r.row for r in recipes] == ["t.csv:2", "t.csv:5"]
    assert report["dropped"] == {"exact duplicate": 1, "near duplicate": 1}
    assert report["examples"]["near duplicate"] == ["t.csv:4: Creamy Corn!"]


def test_rows_that_cannot_be_recipes_are_dropped_with_their_reason():
    rows = [
        row(title="   "),
        row(ingredients=[]),
        row(directions="[]"),
        row(directions='["Mix it."'),  # broken JSON
        row(directions='{"step": "Mix"}'),  # JSON, but not a list
        RawRow("malformed", "t.csv:9", error="3 cells where the header has 7"),
    ]
    recipes, report = clean(rows)
    assert recipes == []
    assert report["dropped"] == {
        "missing title": 1,
        "missing ingredients": 1,
        "missing directions": 1,
        "unparseable directions": 2,
        "malformed row": 1,
    }
    assert report["examples"]["malformed row"] == ["t.csv:9: 3 cells where the header has 7"]


def test_loud_real_recipes_are_normalised_and_kept_with_examples():
    rows = [
        row(title="Best Hash Browns Ever!!!!!!!!!!!", where="t.csv:2"),
        row(
            title="Chow Mix",
            ingredients=["1 c. peanuts", "1 box Chex"],
            directions=json.dumps(["Mix together and CHOW!!!!!!!", "Don't peek!!!!!!!!!!!"]),
            where="t.csv:3",
        ),
        row(
            title="SLOPPY JOES",
            ingredients=["1 LB. GROUND BEEF", "1 C. KETCHUP"],
            directions=json.dumps(["BROWN THE BEEF. I LIKE IT CRISPY.", "BAKE AT 350 F FOR 1 HOUR?!?!"]),
            ner=["ground beef", "ketchup"],
            where="t.csv:4",
        ),
        row(
            title="*~*~* Holiday Fudge *~*~*",
            ingredients=["2 c. sugar", "----------", "1 c. milk"],
            directions=json.dumps(["Boil.......5 minutes", "Pour into a pan____"]),
            ner=["sugar", "milk"],
            where="t.csv:5",
        ),
    ]
    recipes, report = clean(rows)
    assert report["kept"] == 4 and report["dropped"] == {}
    hash_browns, chow, joes, fudge = recipes
    assert hash_browns.title == "Best Hash Browns Ever!"
    assert chow.directions == ("Mix together and CHOW!", "Don't peek!")  # one loud word is no shouting
    assert joes.title == "Sloppy Joes" and joes.ingredients == ("1 lb. ground beef", "1 c. ketchup")
    assert joes.directions == ("Brown the beef. I like it crispy.", "Bake at 350 F for 1 hour?")
    assert fudge.title == "Holiday Fudge" and fudge.ingredients == ("2 c. sugar", "1 c. milk")
    assert fudge.directions == ("Boil...5 minutes", "Pour into a pan")
    assert report["normalised"] == {"loud punctuation": 4, "shouting": 1}
    examples = report["normalised_examples"]
    assert (
        examples["loud punctuation"][1]
        == "t.csv:3: 'Mix together and CHOW!!!!!!!' -> 'Mix together and CHOW!'"
    )
    assert examples["shouting"] == ["t.csv:4: 'SLOPPY JOES' -> 'Sloppy Joes'"]


def test_binary_text_and_placeholder_rows_are_dropped_by_reason():
    binary_title = "\x00\x01\ufffd\ufffdPNG\x1a\n\x1b[0m"  # control characters and undecodable bytes
    rows = [
        row(title=binary_title, ingredients=["a", "b"], directions=json.dumps(["c", "d"]), where="t.csv:2"),
        row(title="Pie", directions=json.dumps(["Mix the\u0007 sugar in.", "Bake."]), where="t.csv:3"),
        row(title="Soup", ingredients=["a", "b", "1"], ner=[], where="t.csv:4"),
        row(title="Stew", directions=json.dumps(["x", "1.", "-"]), where="t.csv:5"),
        row(title="!!!!!!!!", where="t.csv:6"),
        row(title="Keyboard Cake", directions=json.dumps(["Mix !@#$%^&*() well."]), where="t.csv:7"),
        row(title="x" * 200, where="t.csv:8"),
    ]
    recipes, report = clean(rows)
    assert recipes == []
    assert report["dropped"] == {
        "control characters or binary": 2,
        "placeholder ingredients": 1,
        "placeholder steps": 1,
        "placeholder title": 1,
        "junk text": 1,
        "title too long": 1,
    }
    first = report["examples"]["control characters or binary"][0]
    assert first.startswith("t.csv:2: \\x00\\x01") and first.isprintable()  # escaped, not raw
    assert report["examples"]["placeholder ingredients"] == ["t.csv:4: Soup | a | b | 1"]


def test_real_but_odd_recipes_are_kept():
    rows = [
        row(title="Ice Water", ingredients=["ice", "water"], directions=json.dumps(["Mix."]), ner=[]),
        row(title="Cr\ufffdme Br\ufffdl\ufffde", ner=["cream"]),  # one stray latin-1 byte per accent
        row(title="Caf\u00c3\u00a9 Mocha", ner=["coffee"]),  # UTF-8 read as latin-1: repaired
        row(title="BLT", ingredients=["1 BLT"], ner=["bacon"]),  # too short to be shouting
        row(title="Tab\tand\nnewline Corn", ner=["corn"]),  # whitespace is not control text
        row(title="Page Corn", directions=json.dumps(["Mix.\f", "Bake."]), ner=["cornmeal"]),  # form feed
    ]
    recipes, report = clean(rows)
    assert [r.title for r in recipes] == [
        "Ice Water", "Cr\ufffdme Br\ufffdl\ufffde", "Caf\u00e9 Mocha", "BLT", "Tab and newline Corn", "Page Corn"
    ]  # fmt: skip
    assert report["dropped"] == {} and report["normalised"] == {"mojibake": 1}


def test_text_is_normalised():
    recipes, _ = clean(
        [
            row(
                title="MAC &amp; CHEESE",
                ingredients=["1\u00a0c.  macaroni", "", "2 c. cheese\u00a0"],
                directions=json.dumps(["Cook\tthe macaroni.", "Stir in the \ufb01ne cheese."]),
            )
        ]
    )
    (recipe,) = recipes
    assert recipe.title == "Mac & Cheese"  # entities unescaped, all-capitals title in capitalised words
    assert recipe.ingredients == ("1 c. macaroni", "2 c. cheese")  # NFKC, whitespace, empty item gone
    assert recipe.directions == ("Cook the macaroni.", "Stir in the fine cheese.")
    raw_tab, _ = clean([row(directions='["Cook\tthe  macaroni. ", "Serve."]')])  # a raw tab in the JSON text
    assert raw_tab[0].directions == ("Cook the macaroni.", "Serve.")


def test_prebuilt_pairs_are_kept_verbatim_and_deduplicated():
    output = (
        "Title: Tea\nIngredients:\n- 1 tea bag\n- 1 c. water\nSteps:\n1. Boil the water.\n2. Steep the tea."
    )
    pair = RawRow("pair", "p.jsonl:1", {"input": "Make tea.", "output": output})
    empty = RawRow("pair", "p.jsonl:3", {"input": "Make tea.", "output": " "})
    recipes, report = clean([pair, pair, empty])
    (recipe,) = recipes
    assert recipe.pair == ("Make tea.", output)
    assert recipe.title == "Tea" and recipe.n_ingredients == 2 and recipe.n_steps == 2
    assert report["dropped"] == {"exact duplicate": 1, "missing input or output": 1}


def test_inspect_command_shows_counts_drop_reasons_and_samples(tmp_path, capsys):
    from recipe_trainer.cli import main

    path = tmp_path / "mixed.csv"
    with open(SAMPLE) as sample:
        lines = sample.readlines()
    path.write_text("".join(lines[:11]) + lines[5] + "99,Too short,x\n")
    assert main(["data", "inspect", str(path), "--samples", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["report"]["rows"] == 12 and summary["report"]["kept"] == 10
    assert summary["report"]["dropped"] == {"exact duplicate": 1, "malformed row": 1}
    assert sum(summary["quality"]) == sum(summary["difficulty"]) == 10
    assert summary["samples"][0]["target"].startswith("Title: No-Bake Nut Cookies")
    assert main(["data", "inspect", str(tmp_path / "missing.csv")]) == 1
    assert "dataset.path" in capsys.readouterr().err


def test_duplicate_keys_are_the_same_in_every_process():
    """Worker processes compute the keys that the reading process deduplicates with; Python's
    own str hash differs per process (PYTHONHASHSEED), these must not."""
    import os
    import subprocess
    import sys

    from recipe_trainer.data.cleaning import duplicate_keys

    code = (
        "from recipe_trainer.data.cleaning import clean_recipes, duplicate_keys\n"
        "from recipe_trainer.data.loading import iter_raw_rows\n"
        f"recipes, _ = clean_recipes(iter_raw_rows({str(SAMPLE)!r}))\n"
        "print([duplicate_keys(r) for r in list(recipes)[:50]])\n"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]  # fmt: skip
    recipes, _ = clean_recipes(iter_raw_rows(SAMPLE))
    here = str([duplicate_keys(r) for r in list(recipes)[:50]])
    assert outputs[0].strip() == outputs[1].strip() == here
