"""Loading checkpoints for inference: the adapter lands on the right base, and text is repeatable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from checkpoint_fixtures import (
    gpt2_checkpoint,
    one_torch_thread,
    t5_checkpoints,
    trainer_config,
    write_checkpoint,
)
from peft import PeftModel
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.cli import main
from recipe_trainer.data.tokenizer import load_pretrained_tokenizer
from recipe_trainer.inference import (
    NO_REPEAT_NGRAM_SIZE,
    decoding_options,
    generate_recipe,
    generate_recipes,
    load_checkpoint,
    prompt_for,
)
from transformers import AutoModelForSeq2SeqLM

TITLE = "Chicken Noodle Soup"


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _logits(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids, decoder_input_ids=ids[:, :5]).logits


def test_scratch_adapter_finds_base_model_dir_although_it_names_a_pod_path():
    checkpoint = t5_checkpoints().untrained
    adapter_config = json.loads((checkpoint / layout.MODEL_DIR / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "/checkpoints/base-model"  # not on this machine

    loaded = load_checkpoint(checkpoint)

    assert isinstance(loaded.model, PeftModel)
    assert loaded.base_model == str(checkpoint.parent / layout.BASE_MODEL_DIR)
    assert loaded.task == "seq2seq"
    assert loaded.config.spec.model.init == "scratch"


def test_lora_applies_on_top_of_an_existing_full_checkpoint_named_by_model_name():
    fixtures = t5_checkpoints()
    loaded = load_checkpoint(fixtures.trained)
    full = AutoModelForSeq2SeqLM.from_pretrained(fixtures.full_model_dir).eval()
    prompt = prompt_for(TITLE, [], "seq2seq")

    assert loaded.config.spec.model.name == str(fixtures.full_model_dir)
    assert loaded.base_model == str(fixtures.full_model_dir)
    with loaded.model.disable_adapter():
        assert torch.allclose(
            _logits(loaded.model, loaded.tokenizer, prompt), _logits(full, loaded.tokenizer, prompt)
        )
    # the trained adapter really changes the model
    assert not torch.allclose(
        _logits(loaded.model, loaded.tokenizer, prompt), _logits(full, loaded.tokenizer, prompt)
    )


def test_checkpoint_root_means_the_best_checkpoint_else_the_newest(tmp_path):
    root = tmp_path / "run"
    shutil.copytree(gpt2_checkpoint().parent, root)
    shutil.copytree(root / "step-00000010", root / "step-00000020")
    (root / "step-00000020" / layout.STATE_FILE).write_text(json.dumps({"step": 20}))

    assert load_checkpoint(root).step == 10  # best.json marks step 10
    (root / layout.BEST_FILE).unlink()
    assert load_checkpoint(root).step == 20


def test_greedy_generation_repeats_and_sampling_repeats_with_its_seed():
    loaded = load_checkpoint(t5_checkpoints().trained)
    prompt = prompt_for(TITLE, ["2 c. noodles", "1 chicken"], loaded.task)

    def make(**options):
        return generate_recipe(loaded.model, loaded.tokenizer, prompt, max_new_tokens=24, **options)

    greedy = make()
    assert greedy and greedy == make()
    sampled = [make(do_sample=True, temperature=1.5, seed=seed) for seed in range(4)]
    assert sampled[0] == make(do_sample=True, temperature=1.5, seed=0)
    assert len(set(sampled)) > 1  # the seed really drives the draw


def test_causal_generation_returns_only_the_new_text():
    loaded = load_checkpoint(gpt2_checkpoint())
    prompt = prompt_for(TITLE, [], loaded.task)
    text = generate_recipe(loaded.model, loaded.tokenizer, prompt, max_new_tokens=12)

    assert loaded.task == "causal"
    assert text and not text.startswith(prompt.strip())


def test_generate_command_prints_a_recipe_and_its_quality(capsys):
    assert (
        main(["generate", str(t5_checkpoints().trained.parent), "--title", TITLE, "--max-new-tokens", "24"])
        == 0
    )

    out = capsys.readouterr().out
    assert TITLE in out
    assert "quality score:" in out
    assert "step 140" in out  # the checkpoint root resolved to its best checkpoint


def test_adapter_without_its_base_fails_with_a_hint(tmp_path, capsys):
    alone = tmp_path / "step-00000010"
    shutil.copytree(gpt2_checkpoint(), alone)  # copied without the root's base-model/

    with pytest.raises(FileNotFoundError, match="base-model"):
        load_checkpoint(alone)
    assert main(["generate", str(alone), "--title", TITLE]) == 1
    assert "no base model" in capsys.readouterr().err


def test_full_fine_tune_checkpoint_loads_without_a_base(tmp_path):
    """lora.enabled: false (the CPU quickstart) keeps the whole model in model/."""
    fixtures = t5_checkpoints()
    model = AutoModelForSeq2SeqLM.from_pretrained(fixtures.full_model_dir)
    tokenizer = load_pretrained_tokenizer(str(fixtures.full_model_dir))
    config = trainer_config(
        tmp_path, {"name": "tiny-t5", "init": "scratch", "config": {"model_type": "t5"}}, lora=False
    )
    checkpoint = write_checkpoint(tmp_path, 7, model, tokenizer, config)

    loaded = load_checkpoint(tmp_path)

    assert loaded.path == checkpoint and not loaded.is_adapter
    prompt = prompt_for(TITLE, [], "seq2seq")
    assert generate_recipe(loaded.model, loaded.tokenizer, prompt, max_new_tokens=16) == generate_recipe(
        model.eval(), tokenizer, prompt, max_new_tokens=16
    )


def test_generation_on_cpu_leaves_the_callers_thread_count_alone():
    """Decoding runs on one CPU thread (GENERATION_CPU_THREADS); training after a validation
    sample must get its threads back."""
    loaded = load_checkpoint(gpt2_checkpoint())
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate_recipe(loaded.model, loaded.tokenizer, prompt_for(TITLE, [], loaded.task), max_new_tokens=4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "make", [gpt2_checkpoint, lambda: t5_checkpoints().trained], ids=["causal", "seq2seq"]
)
def test_a_batch_of_prompts_of_different_lengths_decodes_as_each_prompt_alone(make):
    """Batched generation pads causal prompts on the left and encoder inputs on the right; with
    the attention mask, every prompt's greedy text is the one it gets alone."""
    loaded = load_checkpoint(make())
    prompts = [
        prompt_for(TITLE, [], loaded.task),
        prompt_for("Pie", ["3 apples", "1 c. sugar", "2 c. flour", "1/2 c. butter"], loaded.task),
        prompt_for("Toast", ["bread"], loaded.task),
    ]
    alone = [generate_recipe(loaded.model, loaded.tokenizer, p, max_new_tokens=16) for p in prompts]

    assert generate_recipes(loaded.model, loaded.tokenizer, prompts, max_new_tokens=16) == alone
    assert generate_recipes(loaded.model, loaded.tokenizer, prompts, max_new_tokens=16, batch_size=2) == alone


def test_decoding_never_repeats_a_twelve_token_sequence():
    """The loop guard (NO_REPEAT_NGRAM_SIZE): the tiny GPT-2 loops on its own and stops there."""
    loaded = load_checkpoint(gpt2_checkpoint())
    prompt = loaded.tokenizer(prompt_for(TITLE, [], loaded.task), return_tensors="pt").input_ids
    n = NO_REPEAT_NGRAM_SIZE

    def decode(**guard) -> list[int]:
        options = decoding_options(loaded.tokenizer, max_new_tokens=80) | guard
        with torch.inference_mode():
            return loaded.model.generate(input_ids=prompt, **options)[0].tolist()

    def repeats(ids: list[int]) -> int:
        grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
        return len(grams) - len(set(grams))

    assert repeats(decode(no_repeat_ngram_size=0)) > 0  # unguarded, it loops
    assert repeats(decode()) == 0
