"""What each change of the training forward buys: CPU seconds of one forward + backward of the
same packed SmolLM2-135M batch (LoRA r=16 on q_proj/v_proj, fp32, one thread, so the figure is
work done rather than a share of a busy machine), per path, with the loss each path computes:

* plain: full logits of every position, 4-D block-diagonal masks (`forward.reference_batch_loss`);
* logits at labels: `logits_to_keep` = the positions with a label, same masks;
* + segment attention: the batch flattened, attention per recipe (`forward.batch_loss`);
* with `--compile`, + torch.compile: the same, with every RMSNorm and gated MLP compiled by
  inductor (dynamic token count, one graph shared by the 30 layers; attention stays eager, as its
  per-recipe split is data-dependent). The element-wise work (~15% of a step) is what fusing can
  save; this path measures whether it does.

    nice -n 10 .venv/bin/python bench/forward_paths.py [--rows 2] [--repeats 2] [--compile]

Paths alternate (repeats x paths), the best CPU time of each is kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput_harness as harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile path")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    from recipe_trainer.training.forward import batch_loss, enable_segment_attention, reference_batch_loss

    torch.set_num_threads(1)
    model, (batch,) = lora_model_and_batches(args.rows, 1, lora_dropout=0.0)
    unsegmented = {k: v for k, v in batch.items() if k != "segment_lengths"}
    paths = {
        "plain (full logits, 4-D masks)": lambda: reference_batch_loss(model, batch, "causal"),
        "logits at labels only": lambda: batch_loss(model, unsegmented, "causal"),
        "+ segment attention (flattened)": lambda: batch_loss(model, batch, "causal"),
    }
    swaps = compiled_norms_and_mlps(model.get_base_model().model) if args.compile else []
    if args.compile:
        paths["+ torch.compile (RMSNorm, MLP)"] = lambda: batch_loss(model, batch, "causal")
    print(
        f"{batch['num_real_tokens']} real tokens in {args.rows} rows of {batch['input_ids'].shape[1]}, "
        f"{int((batch['segment_lengths'] > 0).sum())} recipes, {batch['num_target_tokens']} labelled; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    best: dict[str, float] = {}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, path in paths.items():
            model.zero_grad()
            segmented = name.startswith("+")
            compiled = "compile" in name
            if segmented:
                enable_segment_attention(model)
            for owner, attribute, eager, fast in swaps:
                setattr(owner, attribute, fast if compiled else eager)
            if compiled and name not in best:
                result = path()  # the first call compiles (tens of seconds): not timed
                result.loss.sum.backward()
                model.zero_grad()
            started = time.process_time()
            result = path()
            result.loss.sum.backward()
            best[name] = min(best.get(name, float("inf")), time.process_time() - started)
            losses[name] = float(result.loss.mean.detach())
            if segmented:
                model.get_base_model().config._attn_implementation = "sdpa"
    plain = best["plain (full logits, 4-D masks)"]
    print("| path | CPU s, forward + backward | vs plain | mean loss |")
    print("|---|---:|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {plain / seconds:.2f}x | {losses[name]:.6f} |")


def lora_model_and_batches(rows: int, count: int, lora_dropout: float) -> tuple:
    """SmolLM2-135M with LoRA r=16 on q_proj/v_proj (the issue's setup), and `count` packed batches
    of `rows` rows of the bundled sample's first training recipes, formatted and tokenized by our
    pipeline (prompt <= 64, recipe <= 448 tokens): the batches every CPU path here is timed on."""
    import torch
    from peft import LoraConfig, get_peft_model
    from recipe_api.v1alpha1 import DatasetSpec
    from recipe_trainer.data.formatting import format_pair
    from recipe_trainer.data.packing import TokenizedExample, collate_rows, pack_best_fit_decreasing
    from recipe_trainer.data.split import load_splits
    from recipe_trainer.data.tokenized_cache import TokenizationSettings, tokenize_pairs
    from recipe_trainer.data.tokenizer import load_pretrained_tokenizer
    from transformers import AutoModelForCausalLM

    settings = harness.Settings()
    model_dir = harness.model_directory(harness.SMOLLM2)
    tokenizer = load_pretrained_tokenizer(str(model_dir))
    splits, _ = load_splits(DatasetSpec(path=str(harness.SAMPLE)))
    recipes = 40 * rows * count
    pairs = [
        format_pair(recipe, "causal") for recipe, _ in zip(splits["train"], range(recipes), strict=False)
    ]
    token_settings = TokenizationSettings(
        "causal", settings.max_source_length, settings.max_target_length, 0.05, None
    )
    sources, targets = tokenize_pairs(tokenizer, [p[0] for p in pairs], [p[1] for p in pairs], token_settings)
    examples = [TokenizedExample(s, t) for s, t in zip(sources, targets, strict=True)]
    capacity = (settings.max_source_length + settings.max_target_length,)
    packed = pack_best_fit_decreasing([e.sizes("causal") for e in examples], capacity)
    batches = [
        collate_rows(
            [[examples[i] for i in row] for row in packed[k : k + rows]], "causal", tokenizer.pad_token_id
        )
        for k in range(0, rows * count, rows)
    ]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=lora_dropout,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora).train(), batches


def compiled_norms_and_mlps(decoder) -> list[tuple]:
    """(owner, attribute, eager module, compiled module) for every RMSNorm and MLP of a Llama-style
    decoder: swapped in and out per path, so the eager paths keep the eager modules."""
    import torch

    swaps = [(decoder, "norm", decoder.norm)]
    for layer in decoder.layers:
        swaps += [
            (layer, name, getattr(layer, name))
            for name in ("input_layernorm", "post_attention_layernorm", "mlp")
        ]
    return [(owner, name, module, torch.compile(module, dynamic=True)) for owner, name, module in swaps]


if __name__ == "__main__":
    main()
