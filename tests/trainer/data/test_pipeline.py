"""What the trainer sees: micro-batches that resume exactly, the same count on every rank, every
eligible recipe once per epoch, packing that saves compute, and honest reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from recipe_api.v1alpha1 import RecipeTrainingJobSpec
from recipe_trainer.data import pipeline
from recipe_trainer.data.packing import IGNORE_INDEX, forward_batch
from recipe_trainer.data.pipeline import TrainingData
from recipe_trainer.data.records import Recipe
from recipe_trainer.data.tokenized_cache import TokenizationSettings, build_or_load
from recipe_trainer.data.tokenizer import special_token_ids, train_recipe_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


def sample_examples() -> list[dict]:
    with SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    examples = []
    for number, row in enumerate(rows):
        ingredients, directions = json.loads(row["ingredients"]), json.loads(row["directions"])
        examples.append(
            {
                "title": row["title"], "ingredients": ingredients, "directions": directions,
                "ner": json.loads(row["NER"]), "source": f"Write a recipe for {row['title']}.",
                "target": "\n".join([row["title"], *ingredients, *directions]),
                "quality": 0.4 + 0.6 * ((number * 37) % 100) / 100,
                "n_ingredients": len(ingredients), "n_steps": len(directions),
            }
        )  # fmt: skip
    return examples


def job_spec(augmentation: float = 0.0, **training) -> RecipeTrainingJobSpec:
    return RecipeTrainingJobSpec.model_validate(
        {
            "model": {"name": "scratch"},
            "dataset": {"path": str(SAMPLE)},
            "training": {"microBatchSize": 3, "maxSourceLength": 32, "maxTargetLength": 256, **training},
            "augmentation": {"probability": augmentation},
        }
    )


@pytest.fixture(scope="module")
def examples():
    return sample_examples()


@pytest.fixture(scope="module")
def tokenizers(examples):
    texts = [e["source"] + "\n" + e["target"] for e in examples]
    return {kind: train_recipe_tokenizer(texts, vocab_size=1000, kind=kind) for kind in ("seq2seq", "causal")}


@pytest.fixture(scope="module")
def splits(examples, tokenizers, tmp_path_factory):
    """Tokenized train/validation splits of the sample for each task, built once."""
    built = {}
    for task in tokenizers:
        settings = TokenizationSettings(task, 32, 256, 0.1, None)

        def make(task=task):
            return {"train": iter(examples[:900]), "validation": iter(examples[900:])}, {"dropped": {}}

        built[task] = build_or_load(tmp_path_factory.mktemp(task), "key", make, tokenizers[task], settings)
    return built


def training_data(splits, tokenizers, task="seq2seq", rank=0, world_size=1, **settings) -> TrainingData:
    dataset, report = splits[task]
    return TrainingData(dataset, report, job_spec(**settings), tokenizers[task], task, rank, world_size)


def _rephrased(recipe, task, spec, rng):
    """Stands in for the augmentation module until it exists: a prompt phrasing drawn from rng."""
    phrasing = ["How do I make {}?", "Give me a recipe for {}.", "Cook {} for me, please."][rng.integers(3)]
    return phrasing.format(recipe.title), "\n".join([recipe.title, *recipe.ingredients, *recipe.directions])


@pytest.fixture
def augmentation(monkeypatch):
    try:
        pipeline.augmented_pair(sample_recipe(), "seq2seq", job_spec(0.5), np.random.default_rng(0))
    except NotImplementedError:
        monkeypatch.setattr(pipeline, "augmented_pair", _rephrased)


def sample_recipe() -> Recipe:
    return Recipe("Corn Pudding", ("1 can corn", "2 eggs"), ("Mix corn and eggs.", "Bake 1 hour."))


def same_batches(left: list[dict], right: list[dict]) -> bool:
    return len(left) == len(right) and all(
        a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
        for a, b in zip(left, right, strict=True)
    )


def run(data: TrainingData, micro_batches: int, total: int) -> list[dict]:
    """Take micro-batches across epochs as a trainer does, reporting progress as it goes."""
    taken: list[dict] = []
    while len(taken) < micro_batches:
        for batch in data.batches():
            taken.append(batch)
            data.set_progress(len(taken) / total)
            if len(taken) == micro_batches:
                break
    return taken


@pytest.mark.parametrize("task", ["seq2seq", "causal"])
def test_resume_mid_epoch_continues_with_exactly_the_same_batches(splits, tokenizers, task, augmentation):
    total = 60  # crosses epoch boundaries as the curriculum widens
    settings = {"rank": 1, "world_size": 2, "augmentation": 0.5}
    reference = run(training_data(splits, tokenizers, task, **settings), total, total)

    first = training_data(splits, tokenizers, task, **settings)
    before = run(first, 23, total)
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = training_data(splits, tokenizers, task, **settings)
    resumed.load_state_dict(saved)
    resumed.set_progress(23 / total)
    after = []
    while len(after) < total - 23:
        for batch in resumed.batches():
            after.append(batch)
            resumed.set_progress((23 + len(after)) / total)
            if len(after) == total - 23:
                break
    assert same_batches(before + after, reference)


def test_augmentation_rephrases_some_prompts_and_keeps_the_recipes(splits, tokenizers, augmentation):
    plain = list(training_data(splits, tokenizers, "causal").batches())
    augmented = list(training_data(splits, tokenizers, "causal", augmentation=0.5).batches())
    assert any(
        not torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(augmented, plain, strict=False)
    )
    eos = tokenizers["causal"].eos_token_id
    recipes = {recipe for b in plain for recipe in _targets(b, eos)}
    assert {recipe for b in augmented for recipe in _targets(b, eos)} == recipes, "targets are not changed"


def test_every_rank_runs_the_same_number_of_batches_and_the_epoch_covers_every_eligible_recipe(
    splits, tokenizers, examples
):
    per_rank = [list(training_data(splits, tokenizers, rank=r, world_size=2).batches()) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) > 0
    # The default curriculum's first stage: <= 6 ingredients, <= 6 steps, quality >= 0.5.
    eligible = [
        e for e in examples[:900] if e["n_ingredients"] <= 6 and e["n_steps"] <= 6 and e["quality"] >= 0.5
    ]
    eos = tokenizers["seq2seq"].eos_token_id
    taken = [recipe for batches in per_rank for b in batches for recipe in _targets(b, eos)]
    train = splits["seq2seq"][0]["train"]
    expected = {tuple(train[examples.index(e)]["target_ids"]) for e in eligible}
    assert set(taken) == expected
    repeated_at_epoch_end = sum(batches[-1]["num_examples"] for batches in per_rank)
    assert len(taken) - len(expected) <= repeated_at_epoch_end


def _targets(batch: dict, eos: int) -> list[tuple[int, ...]]:
    """The recipes (target ids, eos included) packed in a batch, read back from its labels."""
    recipes = []
    for row in batch["labels"].tolist():
        current: list[int] = []
        for token in row:
            if token == IGNORE_INDEX:
                continue
            current.append(token)
            if token == eos:
                recipes.append(tuple(current))
                current = []
    return recipes


def test_a_later_stage_trains_on_more_recipes_and_the_disabled_curriculum_on_all(splits, tokenizers):
    def recipes_in_epoch(progress: float, **spec) -> int:
        data = training_data(splits, tokenizers, **spec)
        data.set_progress(progress)
        return sum(b["num_examples"] for b in data.batches())

    early, middle = recipes_in_epoch(0.0), recipes_in_epoch(0.45)
    spec = job_spec()
    spec.curriculum.enabled = False
    everything = sum(
        b["num_examples"]
        for b in TrainingData(*splits["seq2seq"], spec, tokenizers["seq2seq"], "seq2seq").batches()
    )
    assert early < middle < everything
    assert everything >= 900


def test_packing_saves_compute_and_reports_what_it_measured(splits, tokenizers):
    for task in ("seq2seq", "causal"):
        packed = training_data(splits, tokenizers, task, packing=True)
        padded = training_data(splits, tokenizers, task, packing=False)
        for data in (packed, padded):
            data.set_progress(1.0)
        packed_batches, padded_batches = list(packed.batches()), list(padded.batches())
        real = sum(b["num_real_tokens"] for b in packed_batches)
        processed = sum(b["num_padded_tokens"] for b in packed_batches)
        assert packed.report()["packing_efficiency"] == pytest.approx(real / processed)
        assert packed.packing_efficiency > 0.9, "rows are nearly full of real tokens"
        assert len(packed_batches) < len(padded_batches)


def test_unpacked_batches_hold_one_recipe_per_row_grouped_by_length(splits, tokenizers):
    data = training_data(splits, tokenizers, "causal", packing=False)
    data.set_progress(1.0)
    batches = list(data.batches())
    assert all(b["attention_mask"].dim() == 2 and b["num_examples"] == len(b["input_ids"]) for b in batches)
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(dim=1)]
    shuffled = np.random.default_rng(0).permutation(lengths)
    size = data.micro_batch_size

    def padded_tokens(order) -> int:
        return sum(max(order[i : i + size]) * len(order[i : i + size]) for i in range(0, len(order), size))

    assert sum(b["num_padded_tokens"] for b in batches) < padded_tokens(list(shuffled))


def test_labels_train_on_the_recipe_only(splits, tokenizers):
    causal = next(training_data(splits, tokenizers, "causal").batches())
    prompt = tokenizers["causal"]("Write a recipe for", add_special_tokens=False)["input_ids"]
    first_row = causal["input_ids"][0].tolist()
    assert first_row[: len(prompt)] == prompt
    assert (causal["labels"][0, : len(prompt)] == IGNORE_INDEX).all(), "no loss on the prompt"
    assert causal["num_target_tokens"] == int((causal["labels"] != IGNORE_INDEX).sum())
    seq2seq = next(training_data(splits, tokenizers, "seq2seq").batches())
    pad = tokenizers["seq2seq"].pad_token_id
    assert not (seq2seq["labels"] == pad).any(), "padding is never a target"


@pytest.mark.parametrize("task", ["seq2seq", "causal"])
def test_batches_run_through_a_model_built_from_the_tokenizer(splits, tokenizers, task):
    ids = special_token_ids(tokenizers[task], task)
    torch.manual_seed(0)
    if task == "seq2seq":
        model = T5ForConditionalGeneration(
            T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2, **ids)
        )
    else:
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=512, **ids))
    batch = next(training_data(splits, tokenizers, task).batches())
    logits = forward_batch(model, batch).logits
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1) if task == "seq2seq" else logits[:, :-1].flatten(0, 1),
        batch["labels"].flatten() if task == "seq2seq" else batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE_INDEX,
    )
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_validation_is_fixed_and_shared_evenly_between_ranks(splits, tokenizers):
    ranks = [training_data(splits, tokenizers, rank=r, world_size=2) for r in range(2)]
    first = [list(data.validation_batches(max_batches=50)) for data in ranks]
    assert len(first[0]) == len(first[1]) > 0
    for _ in ranks[0].batches():  # a training epoch later, validation is on the same batches
        pass
    assert ranks[0].epoch == 1
    assert same_batches(first[0], list(ranks[0].validation_batches(max_batches=50)))
    assert sum(b["num_examples"] for batches in first for b in batches) >= 99
    assert len(list(ranks[0].validation_batches(max_batches=1))) == 1
    prompt, reference = ranks[0].validation_examples(2)[0]
    assert prompt.startswith("Write a recipe for") and reference.startswith(
        prompt.removeprefix("Write a recipe for ")[:-1]
    )


def test_the_epoch_estimate_plans_about_the_real_number_of_batches(splits, tokenizers):
    for packing in (True, False):
        data = training_data(splits, tokenizers, packing=packing)
        data.set_progress(1.0)
        actual = len(list(data.batches()))
        estimate = data.estimated_micro_batches_per_epoch(progress=1.0)
        assert abs(estimate - actual) <= max(1, actual // 10)
