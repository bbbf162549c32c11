"""The token cache must be reused when nothing changed, rebuilt when anything that shapes the tokens
changed, and never left half-written."""

from __future__ import annotations

import os
import threading

import pytest
from recipe_trainer.data.tokenized_cache import (
    TokenizationSettings,
    build_or_load,
    cache_key,
    data_fingerprint,
    tokenize_pairs,
    tokenizer_fingerprint,
)
from recipe_trainer.data.tokenizer import load_pretrained_tokenizer, train_recipe_tokenizer
from trainer.data.test_tokenizer import sample_texts

SETTINGS = TokenizationSettings(
    "seq2seq", max_source_length=16, max_target_length=64, validation_fraction=0.05, max_recipes=None
)


@pytest.fixture(scope="module")
def tokenizer():
    return train_recipe_tokenizer(sample_texts(300), vocab_size=600, kind="seq2seq")


def _example(text: str) -> dict:
    title = text.split("\n")[0]
    return {
        "title": title, "ingredients": ["1 c. flour"], "directions": ["Mix."], "ner": ["flour"], "is_pair": False,
        "source": f"Write a recipe for {title}.", "target": text, "quality": 0.9, "n_ingredients": 1, "n_steps": 1,
    }  # fmt: skip


class CountingBuilder:
    """make_examples for build_or_load that remembers how often the slow path ran."""

    def __init__(self, texts):
        self.texts, self.calls = texts, 0

    def __call__(self):
        self.calls += 1
        examples = [_example(t) for t in self.texts]
        return {"train": iter(examples[:-2]), "validation": iter(examples[-2:])}, {
            "dropped": {"duplicate": 3}
        }


def test_second_run_reads_the_cache_without_rebuilding(tokenizer, tmp_path):
    builder = CountingBuilder(sample_texts(20))
    first, report = build_or_load(tmp_path, "key", builder, tokenizer, SETTINGS)
    second, again = build_or_load(tmp_path, "key", builder, tokenizer, SETTINGS)
    assert builder.calls == 1
    assert report == again == {"dropped": {"duplicate": 3}}
    assert second["train"]["target_ids"] == first["train"]["target_ids"]
    assert (len(second["train"]), len(second["validation"])) == (18, 2)
    assert second["train"].cache_files, "the cached split is memory-mapped from disk"


def test_tokens_are_truncated_and_end_with_eos(tokenizer, tmp_path):
    splits, _ = build_or_load(tmp_path, "key", CountingBuilder(sample_texts(20)), tokenizer, SETTINGS)
    for source, target in zip(splits["train"]["source_ids"], splits["train"]["target_ids"], strict=True):
        assert len(source) <= 16 and len(target) <= 64
        assert source[-1] == target[-1] == tokenizer.eos_token_id
    causal = TokenizationSettings("causal", 16, 64, 0.05, None)
    sources, _ = tokenize_pairs(tokenizer, ["Write a recipe for Corn Pudding."], ["Corn Pudding"], causal)
    assert tokenizer.eos_token_id not in sources[0], "a causal prompt runs straight into its recipe"


def test_key_changes_with_data_tokenizer_and_settings(tokenizer, tmp_path):
    data = tmp_path / "recipes.csv"
    data.write_text("title\nCorn Pudding\n")
    base = cache_key(data_fingerprint(data), tokenizer_fingerprint(tokenizer), SETTINGS)
    other_tokenizer = train_recipe_tokenizer(sample_texts(300), vocab_size=700, kind="seq2seq")
    assert cache_key(data_fingerprint(data), tokenizer_fingerprint(other_tokenizer), SETTINGS) != base
    longer = TokenizationSettings("seq2seq", 16, 128, 0.05, None)
    assert cache_key(data_fingerprint(data), tokenizer_fingerprint(tokenizer), longer) != base
    assert cache_key(data_fingerprint(data), tokenizer_fingerprint(tokenizer), SETTINGS) == base
    data.write_text("title\nCorn Pudding\nNo-Bake Nut Cookies\n")
    assert cache_key(data_fingerprint(data), tokenizer_fingerprint(tokenizer), SETTINGS) != base


def test_directory_fingerprint_sees_a_new_data_file_only(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    before = data_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("where the data came from\n")
    assert data_fingerprint(tmp_path) == before
    (tmp_path / "b.jsonl").write_text("{}\n")
    assert data_fingerprint(tmp_path) != before


def test_a_crash_while_building_leaves_no_cache_behind(tokenizer, tmp_path):
    def crashing():
        def examples():
            yield _example("Corn Pudding\n1 c. corn")
            raise RuntimeError("pod killed")

        return {"train": examples(), "validation": iter([])}, {}

    with pytest.raises(RuntimeError, match="pod killed"):
        build_or_load(tmp_path, "key", crashing, tokenizer, SETTINGS)
    assert os.listdir(tmp_path) == []
    builder = CountingBuilder(sample_texts(5))
    splits, _ = build_or_load(tmp_path, "key", builder, tokenizer, SETTINGS)
    assert builder.calls == 1 and len(splits["train"]) == 3


def test_an_empty_validation_split_is_an_empty_dataset(tokenizer, tmp_path):
    def no_validation():
        return {"train": iter([_example("Corn Pudding\n1 c. corn")]), "validation": iter([])}, {}

    splits, _ = build_or_load(tmp_path, "key", no_validation, tokenizer, SETTINGS)
    assert (len(splits["train"]), len(splits["validation"])) == (1, 0)


def test_a_restarted_pod_loading_the_saved_tokenizer_hits_the_same_cache(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_pretrained_tokenizer(str(tmp_path))
    assert tokenizer_fingerprint(reloaded) == tokenizer_fingerprint(tokenizer)


def test_two_builders_racing_both_end_with_the_same_complete_cache(tokenizer, tmp_path):
    started = threading.Barrier(2)

    class RacingBuilder(CountingBuilder):
        def __call__(self):
            started.wait()  # both are past the cache check before either finishes
            return super().__call__()

    builders = [RacingBuilder(sample_texts(30)) for _ in range(2)]
    results = [None, None]

    def build(n):
        results[n] = build_or_load(tmp_path, "key", builders[n], tokenizer, SETTINGS)

    threads = [threading.Thread(target=build, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [b.calls for b in builders] == [1, 1]
    assert results[0][0]["train"]["target_ids"] == results[1][0]["train"]["target_ids"]
    assert os.listdir(tmp_path) == ["key"], "the loser's staging copy is gone"


def test_tokenizing_in_the_cleaning_workers_gives_the_same_cache_rows(tokenizer, tmp_path):
    """The full-corpus path (format + tokenize in 2 worker processes beside cleaning) writes the
    rows the in-process path writes: same recipes, same order, same ids, same report."""
    from recipe_api.v1alpha1 import DatasetSpec
    from recipe_trainer.data.rows import CacheRows, example_row
    from recipe_trainer.data.split import load_splits
    from trainer.data.conftest import SAMPLE

    spec = DatasetSpec(path=str(SAMPLE), validationFraction=0.1, maxRecipes=600)
    built = []
    for workers, finish in ((1, None), (2, CacheRows(tokenizer, SETTINGS, "seq2seq"))):

        def make_examples(workers=workers, finish=finish):
            splits, report = load_splits(spec, workers=workers, finish=finish)
            if finish is None:
                return {n: (example_row(r, "seq2seq") for r in side) for n, side in splits.items()}, report
            return {n: (row for _, row in side) for n, side in splits.items()}, report

        splits, report = build_or_load(tmp_path / str(workers), "key", make_examples, tokenizer, SETTINGS)
        built.append(({name: split.to_list() for name, split in splits.items()}, report))
    assert built[0] == built[1]
    assert len(built[0][0]["train"]) + len(built[0][0]["validation"]) == 600


def test_rows_made_in_batches_are_written_with_the_gaps_duplicates_leave(tokenizer, tmp_path):
    """`rows.CacheRows` hands back `BatchRow`s; a recipe dropped after its row was made (a
    duplicate found in the reading process) leaves a gap that must not shift the other rows."""
    from recipe_trainer.data.rows import CacheRows, example_row
    from recipe_trainer.data.split import split_of
    from trainer.data.conftest import SAMPLE

    recipes, _ = clean_recipes_of(SAMPLE)
    recipes = [r for r in recipes if split_of(r, SETTINGS.validation_fraction) == "train"][:40]
    made = CacheRows(tokenizer, SETTINGS, "seq2seq")(recipes)
    assert len({id(row.batch) for row in made}) == 1, "one chunk of one split: one Arrow batch"
    kept = [i for i in range(len(recipes)) if i not in (0, 7, 8, 20, 39)]

    def make_examples():
        return {"train": (made[i] for i in kept), "validation": iter([])}, {}

    splits, _ = build_or_load(tmp_path, "key", make_examples, tokenizer, SETTINGS)
    written = splits["train"].to_list()
    expected = [example_row(recipes[i], "seq2seq") for i in kept]
    texts = [k for k in expected[0] if k != "quality"]  # quality is stored as float32
    assert [{k: row[k] for k in texts} for row in written] == [{k: e[k] for k in texts} for e in expected]
    assert [row["quality"] for row in written] == pytest.approx([e["quality"] for e in expected], abs=1e-6)
    sources, targets = tokenize_pairs(
        tokenizer, [e["source"] for e in expected], [e["target"] for e in expected], SETTINGS
    )
    assert [row["source_ids"] for row in written] == sources
    assert [row["target_ids"] for row in written] == targets


def clean_recipes_of(path):
    from recipe_trainer.data.cleaning import clean_recipes
    from recipe_trainer.data.loading import iter_raw_rows
    from recipe_trainer.data.scoring import score_recipes

    recipes, report = clean_recipes(iter_raw_rows(path))
    return list(score_recipes(recipes)), report


def test_the_cache_module_imports_neither_the_pipeline_nor_is_imported_back():
    """Issue 15: the row format lives in `rows`; the cache hashes the modules that shape rows
    without importing the trainer's pipeline (which imports the cache)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from recipe_trainer.data import tokenized_cache\n"
        "tokenized_cache.pipeline_code_version()\n"
        "print('recipe_trainer.data.pipeline' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
