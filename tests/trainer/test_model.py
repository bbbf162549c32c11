"""Which model a job trains: scratch bases written once, LoRA on the right modules with the
trainable share a user expects, and pretrained models loaded from a directory (how LoRA goes on
top of an earlier full fine-tune)."""

from __future__ import annotations

import pytest
import torch
from recipe_api.v1alpha1 import LoraSpec, ModelSpec
from recipe_trainer.checkpoint_layout import BASE_MODEL_DIR, MODEL_DIR, TOKENIZER_DIR
from recipe_trainer.model import load_model, lora_target_modules, write_scratch_base

from .conftest import TINY_T5


def corpus():
    return (f"Mix {n} cups of flour with {n} eggs and bake for {10 * n} minutes." for n in range(200))


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    write_scratch_base(ModelSpec(name="tiny", init="scratch", config=TINY_T5), root, corpus)
    return root


def test_scratch_base_is_written_once_and_reused(checkpoint_dir):
    base = checkpoint_dir / BASE_MODEL_DIR
    before = (base / "model.safetensors").stat().st_mtime_ns
    write_scratch_base(ModelSpec(name="tiny", init="scratch", config=TINY_T5), checkpoint_dir, corpus)
    assert (base / "model.safetensors").stat().st_mtime_ns == before
    assert (base / TOKENIZER_DIR / "tokenizer.json").is_file()


def test_lora_trains_only_the_adapters_on_query_and_value(checkpoint_dir):
    spec = ModelSpec(name="tiny", init="scratch", config=TINY_T5)
    r = 4
    built = load_model(spec, LoraSpec(r=r, alpha=8), checkpoint_dir)
    # T5: q and v of every attention block (encoder self, decoder self and cross), each adapter
    # A (d_model x r) + B (r x inner), inner = heads x d_kv.
    attention_blocks = TINY_T5["num_layers"] + 2 * TINY_T5["num_decoder_layers"]
    inner = TINY_T5["num_heads"] * TINY_T5["d_kv"]
    assert built.trainable_parameters == attention_blocks * 2 * r * (TINY_T5["d_model"] + inner)
    assert 0 < built.trainable_fraction < 0.05
    trainable = {n for n, p in built.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable} == {"q", "v"}


def test_full_fine_tuning_trains_everything(checkpoint_dir):
    built = load_model(
        ModelSpec(name="tiny", init="scratch", config=TINY_T5), LoraSpec(enabled=False), checkpoint_dir
    )
    assert built.trainable_fraction == 1.0


@pytest.mark.parametrize(
    ("model_type", "modules"),
    [
        ("t5", ["q", "v"]),
        ("llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        ("gpt2", ["c_attn"]),
    ],
)
def test_auto_target_modules_per_architecture(model_type, modules):
    assert lora_target_modules(LoraSpec(), model_type) == modules
    assert lora_target_modules(LoraSpec(target_modules=["k"]), model_type) == ["k"]


def test_unknown_architecture_asks_for_target_modules():
    with pytest.raises(ValueError, match=r"spec\.lora\.targetModules") as error:
        lora_target_modules(LoraSpec(), "bert")
    assert "\n" not in str(error.value)


def test_lora_on_a_fully_fine_tuned_model_directory(checkpoint_dir, tmp_path):
    """model.name may point at an earlier run's full-model checkpoint: model/ with the tokenizer
    beside it in tokenizer/, as the trainer writes them."""
    full = load_model(
        ModelSpec(name="tiny", init="scratch", config=TINY_T5), LoraSpec(enabled=False), checkpoint_dir
    )
    with torch.no_grad():
        for parameter in full.model.parameters():
            parameter.add_(0.01)  # "fine-tuned": different from the base
    full.model.save_pretrained(tmp_path / MODEL_DIR)
    full.tokenizer.save_pretrained(tmp_path / TOKENIZER_DIR)

    built = load_model(ModelSpec(name=str(tmp_path / MODEL_DIR)), LoraSpec(r=2), checkpoint_dir)
    assert built.task == "seq2seq"
    assert built.tokenizer.get_vocab() == full.tokenizer.get_vocab()
    base = built.model.get_base_model()
    loaded = dict(base.named_parameters())
    for name, parameter in full.model.named_parameters():
        key = (
            name if name in loaded else name.replace(".q.", ".q.base_layer.").replace(".v.", ".v.base_layer.")
        )
        assert torch.equal(loaded[key], parameter), name


def test_packing_only_where_verified_with_the_reason_logged():
    """`supports_packing` decides in production: an unverified architecture or a flash-attention
    kernel trains on padded rows, and the log line says why."""
    from recipe_trainer.model import packing_plan
    from transformers import BartConfig, LlamaConfig

    llama = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    llama._attn_implementation = "sdpa"
    assert packing_plan(True, llama) == (True, None)
    assert packing_plan(False, llama) == (False, None), "packing off is no news"
    packed, reason = packing_plan(True, BartConfig())
    assert not packed and reason.startswith("spec.training.packing: model_type 'bart' is not verified")
    llama._attn_implementation = "flash_attention_2"
    packed, reason = packing_plan(True, llama)
    assert not packed and "'flash_attention_2' takes no 4-D mask" in reason


def test_seq2seq_models_start_decoding_with_their_own_token():
    from recipe_trainer.model import decoder_start_token_id
    from transformers import BartConfig, GPT2Config, T5Config

    class Tokenizer:
        pad_token_id = 0

    assert decoder_start_token_id(BartConfig(), Tokenizer()) == 2  # BART starts from </s>
    assert decoder_start_token_id(T5Config(decoder_start_token_id=None), Tokenizer()) == 0  # T5: pad
    assert decoder_start_token_id(GPT2Config(), Tokenizer()) is None  # causal: no decoder
