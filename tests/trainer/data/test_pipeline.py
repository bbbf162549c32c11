"""What the trainer sees: micro-batches that resume exactly, the same count on every rank, every
eligible recipe once per epoch, packing that saves compute, and honest reports."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import DatasetDict
from recipe_api.v1alpha1 import CurriculumSpec, RecipeTrainingJobSpec
from recipe_trainer.data.pipeline import TrainingData, tokenizer_training_corpus
from recipe_trainer.data.tokenizer import special_token_ids, train_recipe_tokenizer
from recipe_trainer.losses import IGNORE_INDEX
from recipe_trainer.training.forward import forward_batch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

SAMPLE = Path(__file__).parents[3] / "examples" / "data" / "recipenlg_sample_999.csv"


def job_spec(augmentation: float = 0.0, **training) -> RecipeTrainingJobSpec:
    return RecipeTrainingJobSpec.model_validate(
        {
            "model": {"name": "scratch"},
            "dataset": {"path": str(SAMPLE), "validationFraction": 0.1},
            "training": {"microBatchSize": 3, "maxSourceLength": 32, "maxTargetLength": 256, **training},
            "augmentation": {"probability": augmentation},
        }
    )


@pytest.fixture(scope="module")
def tokenizers():
    corpus = list(tokenizer_training_corpus(job_spec()))
    return {
        kind: train_recipe_tokenizer(corpus, vocab_size=1000, kind=kind) for kind in ("seq2seq", "causal")
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("token-cache")


def training_data(
    cache_dir, tokenizers, task="seq2seq", rank=0, world_size=1, augmentation=0.0, **training
) -> TrainingData:
    """The sample, cleaned, formatted and tokenized by the real pipeline (cached after the first)."""
    spec = job_spec(augmentation, **training)
    return TrainingData.prepare(spec, tokenizers[task], task, cache_dir, rank, world_size)


def same_batches(left: list[dict], right: list[dict]) -> bool:
    return len(left) == len(right) and all(
        a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
        for a, b in zip(left, right, strict=True)
    )


def run(data: TrainingData, micro_batches: int, total: int, done: int = 0) -> list[dict]:
    """Take micro-batches across epochs as a trainer does, reporting progress as it goes."""
    taken: list[dict] = []
    data.set_progress(done / total)
    while len(taken) < micro_batches:
        for batch in data.batches():
            taken.append(batch)
            data.set_progress((done + len(taken)) / total)
            if len(taken) == micro_batches:
                break
    return taken


@pytest.mark.parametrize("task", ["seq2seq", "causal"])
def test_resume_mid_epoch_continues_with_exactly_the_same_batches(cache_dir, tokenizers, task):
    total = 60  # crosses epoch boundaries as the curriculum widens
    settings = {"rank": 1, "world_size": 2, "augmentation": 0.5}
    reference = run(training_data(cache_dir, tokenizers, task, **settings), total, total)

    first = training_data(cache_dir, tokenizers, task, **settings)
    before = run(first, 23, total)
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = training_data(cache_dir, tokenizers, task, **settings)
    resumed.load_state_dict(saved)
    after = run(resumed, total - 23, total, done=23)
    assert same_batches(before + after, reference)
    assert resumed.epoch >= 1, "the run crossed an epoch end"


def test_augmentation_rephrases_but_never_changes_a_recipes_facts(cache_dir, tokenizers):
    plain = list(training_data(cache_dir, tokenizers, "causal").batches())
    augmented = list(training_data(cache_dir, tokenizers, "causal", augmentation=0.5).batches())
    assert any(
        not torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(augmented, plain, strict=False)
    )
    tokenizer = tokenizers["causal"]

    def titles_and_ingredients(batches) -> set[str]:
        recipes = (r for b in batches for r in _targets(b, tokenizer.eos_token_id))
        return {tokenizer.decode(recipe).split("Steps:")[0] for recipe in recipes}

    assert titles_and_ingredients(augmented) == titles_and_ingredients(plain)


def test_every_rank_runs_the_same_number_of_batches_and_the_epoch_covers_every_eligible_recipe(
    cache_dir, tokenizers
):
    per_rank = [list(training_data(cache_dir, tokenizers, rank=r, world_size=2).batches()) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) > 0
    # The default curriculum's first stage and its starting quality threshold.
    curriculum = CurriculumSpec()
    stage, start = curriculum.stages[0], curriculum.quality_threshold.start
    train = training_data(cache_dir, tokenizers).train
    eligible = train.filter(
        lambda r: (
            r["n_ingredients"] <= stage.max_ingredients
            and r["n_steps"] <= stage.max_steps
            and r["quality"] >= start
        )
    )
    eos = tokenizers["seq2seq"].eos_token_id
    taken = [recipe for batches in per_rank for b in batches for recipe in _targets(b, eos)]
    expected = {tuple(ids) for ids in eligible["target_ids"]}
    assert 0 < len(expected) < len(train)
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


def test_a_later_stage_trains_on_more_recipes_and_the_disabled_curriculum_on_all(cache_dir, tokenizers):
    def recipes_in_epoch(progress: float, **spec) -> int:
        data = training_data(cache_dir, tokenizers, **spec)
        data.set_progress(progress)
        return sum(b["num_examples"] for b in data.batches())

    early, middle = recipes_in_epoch(0.0), recipes_in_epoch(0.45)
    data = training_data(cache_dir, tokenizers)
    spec = job_spec()
    spec.curriculum.enabled = False
    everything = TrainingData(
        DatasetDict(train=data.train, validation=data.validation), {}, spec, data.tokenizer, "seq2seq"
    )
    assert early < middle < sum(b["num_examples"] for b in everything.batches())
    assert sum(b["num_examples"] for b in everything.batches()) >= len(data.train)


def test_packing_saves_compute_and_reports_what_it_measured(cache_dir, tokenizers):
    for task in ("seq2seq", "causal"):
        packed = training_data(cache_dir, tokenizers, task, packing=True)
        padded = training_data(cache_dir, tokenizers, task, packing=False)
        for data in (packed, padded):
            data.set_progress(1.0)
        packed_batches, padded_batches = list(packed.batches()), list(padded.batches())
        real = sum(b["num_real_tokens"] for b in packed_batches)
        processed = sum(b["num_padded_tokens"] for b in packed_batches)
        assert packed.report()["packing_efficiency"] == pytest.approx(real / processed)
        assert packed.packing_efficiency > 0.9, "rows are nearly full of real tokens"
        assert len(packed_batches) < len(padded_batches)


def test_unpacked_batches_hold_one_recipe_per_row_grouped_by_length(cache_dir, tokenizers):
    data = training_data(cache_dir, tokenizers, "causal", packing=False)
    data.set_progress(1.0)
    batches = list(data.batches())
    assert all(b["attention_mask"].dim() == 2 and b["num_examples"] == len(b["input_ids"]) for b in batches)
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(dim=1)]
    shuffled = np.random.default_rng(0).permutation(lengths)
    size = data.micro_batch_size

    def padded_tokens(order) -> int:
        return sum(max(order[i : i + size]) * len(order[i : i + size]) for i in range(0, len(order), size))

    assert sum(b["num_padded_tokens"] for b in batches) < padded_tokens(list(shuffled))


def test_labels_train_on_the_recipe_only(cache_dir, tokenizers):
    causal = next(training_data(cache_dir, tokenizers, "causal").batches())
    prompt = tokenizers["causal"]("Write a recipe for", add_special_tokens=False)["input_ids"]
    first_row = causal["input_ids"][0].tolist()
    assert first_row[: len(prompt)] == prompt
    assert (causal["labels"][0, : len(prompt)] == IGNORE_INDEX).all(), "no loss on the prompt"
    assert causal["num_target_tokens"] == int((causal["labels"] != IGNORE_INDEX).sum())
    seq2seq = next(training_data(cache_dir, tokenizers, "seq2seq").batches())
    pad = tokenizers["seq2seq"].pad_token_id
    assert not (seq2seq["labels"] == pad).any(), "padding is never a target"


@pytest.mark.parametrize("task", ["seq2seq", "causal"])
def test_batches_run_through_a_model_built_from_the_tokenizer(cache_dir, tokenizers, task):
    ids = special_token_ids(tokenizers[task], task)
    torch.manual_seed(0)
    if task == "seq2seq":
        model = T5ForConditionalGeneration(
            T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2, **ids)
        )
    else:
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=512, **ids))
    batch = next(training_data(cache_dir, tokenizers, task).batches())
    logits = forward_batch(model, batch).logits
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1) if task == "seq2seq" else logits[:, :-1].flatten(0, 1),
        batch["labels"].flatten() if task == "seq2seq" else batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE_INDEX,
    )
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_validation_is_fixed_and_shared_evenly_between_ranks(cache_dir, tokenizers):
    ranks = [training_data(cache_dir, tokenizers, rank=r, world_size=2) for r in range(2)]
    first = [list(data.validation_batches(max_batches=50)) for data in ranks]
    assert len(first[0]) == len(first[1]) > 0
    for _ in ranks[0].batches():  # a training epoch later, validation is on the same batches
        pass
    assert ranks[0].epoch == 1
    assert same_batches(first[0], list(ranks[0].validation_batches(max_batches=50)))
    assert sum(b["num_examples"] for batches in first for b in batches) >= len(ranks[0].validation) > 0
    assert len(list(ranks[0].validation_batches(max_batches=1))) == 1
    prompt, reference = ranks[0].validation_examples(2)[0]
    title = prompt.removeprefix("Write a recipe for ").split(".")[0]
    assert reference.startswith(f"Title: {title}") and "Steps:" in reference


def test_report_counts_what_cleaning_dropped_and_what_was_kept(cache_dir, tokenizers):
    report = training_data(cache_dir, tokenizers).report()
    cleaning = report["cleaning"]
    assert cleaning["rows"] == 999
    assert cleaning["kept"] + sum(cleaning["dropped"].values()) == cleaning["rows"]
    assert report["train_examples"] + report["validation_examples"] == cleaning["kept"]
    summary = training_data(cache_dir, tokenizers).summary  # what checkpoints and model cards carry
    assert summary["format"] == "RecipeNLG CSV" and summary["rows"] == 999
    assert (summary["kept"], summary["dropped"]) == (cleaning["kept"], cleaning["dropped"])
    assert summary["train_examples"] == report["train_examples"]


def test_the_epoch_estimate_plans_about_the_real_number_of_batches(cache_dir, tokenizers):
    for packing in (True, False):
        data = training_data(cache_dir, tokenizers, packing=packing)
        data.set_progress(1.0)
        estimate, planned = (
            data.estimated_micro_batches_per_epoch(1.0),
            data.estimated_micro_batches_per_epoch(),
        )
        actual = len(list(data.batches()))
        assert abs(estimate - actual) <= max(1, actual // 10)
        assert data.estimated_micro_batches_per_epoch() == planned, "a resumed run plans the same steps"


def test_the_tokenizer_learns_from_training_recipes_only(cache_dir, tokenizers):
    data = training_data(cache_dir, tokenizers)
    corpus = set(tokenizer_training_corpus(job_spec()))
    assert set(data.train["target"]) <= corpus and set(data.train["source"]) <= corpus
    assert not set(data.validation["target"]) & corpus, "validation recipes stay unseen"


@pytest.mark.parametrize(
    ("total_bytes", "cpus", "workers"),
    [
        (669_437, 2, 1),
        (64 * 1024 * 1024 - 1, 16, 1),
        (2_300_000_000, 2, 2),
        (2_300_000_000, 64, 8),
        (2_300_000_000, None, 1),
    ],
)
def test_big_corpora_are_cleaned_on_every_core_small_ones_in_process(total_bytes, cpus, workers):
    from recipe_trainer.data.pipeline import cleaning_workers

    assert cleaning_workers(total_bytes, cpus) == workers


def test_with_a_global_batch_size_the_steps_do_not_depend_on_the_node_count(cache_dir, tokenizers):
    """globalBatchSize 6, micro-batch 3: 2 ranks x 1 or 1 rank x 2 micro-batches hold the same recipes
    in every step, and a position saved with 2 ranks continues on 1 rank with the next step."""
    two = [training_data(cache_dir, tokenizers, rank=r, world_size=2, globalBatchSize=6) for r in range(2)]
    one = training_data(cache_dir, tokenizers, globalBatchSize=6)
    eos = tokenizers["seq2seq"].eos_token_id

    def recipes(batches: list[dict]) -> list[tuple[int, ...]]:
        return sorted(r for b in batches for r in _targets(b, eos))

    per_rank = [list(data.batches()) for data in two]
    single = list(one.batches())
    assert len(single) == 2 * len(per_rank[0]) > 0
    for step in range(len(per_rank[0])):
        assert recipes([per_rank[0][step], per_rank[1][step]]) == recipes(single[2 * step : 2 * step + 2])

    fresh = [training_data(cache_dir, tokenizers, rank=r, world_size=2, globalBatchSize=6) for r in range(2)]
    for data in fresh:
        iterator = data.batches()
        for _ in range(3):  # three steps on 2 ranks
            next(iterator)
    resumed = training_data(cache_dir, tokenizers, globalBatchSize=6)
    resumed.load_state_dict(fresh[0].state_dict())
    step_4 = list(islice(resumed.batches(), 2))
    assert recipes(step_4) == recipes([per_rank[0][3], per_rank[1][3]])
