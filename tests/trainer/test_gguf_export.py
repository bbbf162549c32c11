"""`recipe-train export CHECKPOINT --gguf`: a tiny Llama + LoRA checkpoint written as GGUF must read
back through the `gguf` reader and transformers' GGUF loader as the same model (logits within
tolerance), and, where node-llama-cpp is installed, load in llama.cpp and decode greedily as the
merged Hugging Face model does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import gguf
import pytest
import torch
from checkpoint_fixtures import (
    layout,
    one_torch_thread,
    tokenizer_for,
    trainer_config,
    with_lora,
    workdir,
    write_checkpoint,
)
from recipe_trainer.cli import main
from recipe_trainer.data.tokenizer import special_token_ids
from recipe_trainer.inference import load_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

TEXT = "Title: Banana Bread\nIngredients:\n- 2 c. flour\n- 1 c. sugar\nSteps:\n1. Preheat oven to 350°."
# node-llama-cpp installed outside the repository (README: GGUF export); the check skips without it.
LLAMA_DIR = Path(os.environ.get("RECIPE_LLAMA_CPP_DIR", "/work/wt/llama"))
GREEDY_SCRIPT = Path(__file__).parents[2] / "bench" / "llamacpp_greedy.mjs"


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def llama_checkpoint() -> Path:
    tokenizer = tokenizer_for("causal")
    root = workdir() / "llama"
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=True, **special_token_ids(tokenizer, "causal"),
    )  # fmt: skip
    base = LlamaForCausalLM(config)
    base.save_pretrained(root / layout.BASE_MODEL_DIR)
    adapter = with_lora(base, ["q_proj", "k_proj", "v_proj", "o_proj"], random_init=True)
    spec = trainer_config(root, {"name": "tiny-llama", "init": "scratch", "config": {"model_type": "llama"}})
    return write_checkpoint(root, 10, adapter, tokenizer, spec)


def merged(checkpoint: Path):
    loaded = load_checkpoint(str(checkpoint), device="cpu")
    return loaded.model.merge_and_unload().eval(), loaded.tokenizer


@pytest.mark.parametrize(("quant", "tolerance"), [("f16", 2e-3), ("q8_0", 3e-2)])
def test_gguf_reads_back_as_the_merged_model(llama_checkpoint, tmp_path, quant, tolerance):
    out = tmp_path / f"tiny-{quant}.gguf"
    assert main(["export", str(llama_checkpoint), "--gguf", str(out), "--quant", quant]) == 0
    reader = gguf.GGUFReader(out)
    fields = reader.fields
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    assert bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode() == "gpt-2"
    names = {tensor.name for tensor in reader.tensors}
    assert {
        "token_embd.weight",
        "blk.1.attn_q.weight",
        "blk.1.ffn_down.weight",
        "output_norm.weight",
    } <= names
    model, tokenizer = merged(llama_checkpoint)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32).eval()
    read_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert read_tokenizer(TEXT, add_special_tokens=False).input_ids == ids[0].tolist()
    with torch.no_grad():
        expected, got = model(ids).logits, loaded(ids).logits
    assert (expected - got).abs().max().item() < tolerance
    assert torch.equal(expected.argmax(-1), got.argmax(-1))
    if quant == "f16":  # the check, here without llama.cpp: the first 32 greedy tokens agree
        with torch.no_grad():
            greedy = [
                m.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=None)[
                    0, ids.shape[1] :
                ].tolist()
                for m in (model, loaded)
            ]
        assert greedy[0] == greedy[1] and len(greedy[0]) == 32


def test_a_model_without_a_gguf_mapping_is_refused_in_one_line(tmp_path, capsys):
    from checkpoint_fixtures import gpt2_checkpoint

    assert main(["export", str(gpt2_checkpoint()), "--gguf", str(tmp_path / "x.gguf")]) == 1
    assert "GGUF export supports llama models; this one is 'gpt2'" in capsys.readouterr().err


@pytest.mark.skipif(
    not (LLAMA_DIR / "node_modules" / "node-llama-cpp").is_dir() or shutil.which("node") is None,
    reason=f"node-llama-cpp not installed under {LLAMA_DIR} (npm install node-llama-cpp there)",
)
def test_llama_cpp_loads_the_file_and_decodes_greedily_as_transformers_does(llama_checkpoint, tmp_path):
    out = tmp_path / "tiny-f16.gguf"
    assert main(["export", str(llama_checkpoint), "--gguf", str(out)]) == 0
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(TEXT)
    done = subprocess.run(
        ["node", str(GREEDY_SCRIPT), str(out), str(prompt), "32"],
        cwd=LLAMA_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    model, tokenizer = merged(llama_checkpoint)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert result["prompt_tokens"] == ids[0].tolist()
    with torch.no_grad():
        hf = model.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=None)[0, ids.shape[1] :]
    assert result["tokens"] == hf.tolist()[: len(result["tokens"])]
    assert len(result["tokens"]) == 32
