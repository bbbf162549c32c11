"""Checkpoints on disk exactly as the training loop writes them (`checkpoint_layout`), built from
tiny models so the inference, eval, compare and export tests run offline in seconds.

Built once per test process (the trained model takes a few seconds) and shared by the test
modules through `functools.cache`; everything lives in one temporary directory removed at exit.

* `t5_checkpoints()`: a tiny T5 with a tokenizer trained on the bundled sample, as
  - `untrained`: init scratch, the random base in `base-model/`, a fresh LoRA adapter;
  - `full_model_dir`: the same architecture fully trained on the sample's training split and saved
    with `save_pretrained` (an "existing full checkpoint" on a volume);
  - `trained`: a LoRA adapter trained on top of `full_model_dir`, given as spec.model.name and
    built by the trainer's own `model.load_model`.
* `gpt2_checkpoint()`: a tiny GPT-2 (causal), init scratch, LoRA with random (non-zero) weights.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from recipe_api.contract import checkpoint_step_dir
from recipe_api.trainer_config import TrainerConfig
from recipe_trainer import checkpoint_layout as layout
from recipe_trainer.data.tokenizer import special_token_ids, train_recipe_tokenizer
from recipe_trainer.model import load_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "examples" / "data" / "recipenlg_sample_999.csv"
VALIDATION_FRACTION = 0.1
MAX_SOURCE, MAX_TARGET = 32, 64


@dataclass(frozen=True)
class T5Checkpoints:
    untrained: Path
    trained: Path
    full_model_dir: Path


@contextlib.contextmanager
def one_torch_thread():
    """Tiny models run fastest on one thread, and far faster than on two when other processes
    share the cores (OpenMP threads then wait on each other); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="recipe-ckpt-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def recipe_pairs(task: str, split: str) -> tuple[tuple[str, str], ...]:
    """(prompt, recipe) pairs of the sample's training or validation split, as the trainer sees them."""
    from recipe_trainer.evaluation.checkpoint_eval import load_examples

    spec = trainer_config(workdir(), {"name": "any"}).spec
    return tuple(load_examples(spec, task, split))


def trainer_config(root: Path, model: dict, lora: bool = True) -> TrainerConfig:
    spec = {
        "model": model,
        "dataset": {"path": str(SAMPLE_CSV), "validationFraction": VALIDATION_FRACTION},
        "training": {"maxSourceLength": MAX_SOURCE, "maxTargetLength": MAX_TARGET, "seed": 7},
        "lora": {"enabled": lora, "r": 8, "alpha": 16, "dropout": 0.0},
    }
    return TrainerConfig.model_validate(
        {"name": "tiny", "spec": spec, "runtime": {"checkpointDir": str(root), "runDir": str(root)}}
    )


def write_checkpoint(
    root: Path, step: int, model, tokenizer, config: TrainerConfig, best: bool = True
) -> Path:
    """One complete checkpoint under `root`, built under a .tmp- name and renamed, as the trainer does."""
    tmp = root / (layout.TMP_PREFIX + checkpoint_step_dir(step))
    model.save_pretrained(tmp / layout.MODEL_DIR)
    tokenizer.save_pretrained(tmp / layout.TOKENIZER_DIR)
    (tmp / layout.CONFIG_FILE).write_text(config.to_yaml())
    evaluation = {"validation_loss": 3.0, "perplexity": 20.1, "quality": 0.4}  # shaped like recipe.py's
    state = {"step": step, "epoch": 1.0, "best_metric": 3.0, "progress": {"last_evaluation": evaluation}}
    (tmp / layout.STATE_FILE).write_text(json.dumps(state))
    final = root / checkpoint_step_dir(step)
    tmp.rename(final)
    if best:
        (root / layout.BEST_FILE).write_text(
            json.dumps({"step": step, "path": final.name, "validation_loss": 3.0})
        )
    return final


def tokenizer_for(kind: str):
    texts = [text for pair in recipe_pairs(kind, "train") for text in pair]
    return train_recipe_tokenizer(texts, vocab_size=800, kind=kind)


def tiny_t5(tokenizer, seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, dropout_rate=0.0,
        **special_token_ids(tokenizer, "seq2seq"),
    )  # fmt: skip
    return T5ForConditionalGeneration(config)


def tiny_gpt2(tokenizer, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_embd=64, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        **special_token_ids(tokenizer, "causal"),
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def with_lora(model, target_modules: list[str], random_init: bool = False, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=target_modules, init_lora_weights=not random_init
    )
    return get_peft_model(model, config)


def train_steps(
    model, tokenizer, task: str, steps: int, lr: float, batch_size: int = 16, seed: int = 0
) -> None:
    """A plain torch loop over the training split: enough to make a tiny model write recipe-like text."""
    from recipe_trainer.data.packing import collate_rows
    from recipe_trainer.inference import tokenize_pair
    from recipe_trainer.training.forward import reference_batch_loss

    examples = [
        tokenize_pair(tokenizer, p, r, task, MAX_SOURCE, MAX_TARGET) for p, r in recipe_pairs(task, "train")
    ]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        picked = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        batch = collate_rows(
            [[examples[i]] for i in picked],
            task,
            tokenizer.pad_token_id,
            tokenizer.pad_token_id,
            packed=False,
        )
        loss = reference_batch_loss(model, batch, task).loss  # plain cross-entropy, no smoothing
        (loss.sum / int(loss.tokens)).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@functools.cache
@one_torch_thread()
def t5_checkpoints() -> T5Checkpoints:
    tokenizer = tokenizer_for("seq2seq")
    scratch_model = {"name": "tiny-t5", "init": "scratch", "config": {"model_type": "t5", "d_model": 64}}

    untrained_root = workdir() / "t5-untrained"
    base = tiny_t5(tokenizer)
    base.save_pretrained(untrained_root / layout.BASE_MODEL_DIR)
    adapter = with_lora(base, ["q", "v"])
    adapter.peft_config["default"].base_model_name_or_path = f"/checkpoints/{layout.BASE_MODEL_DIR}"
    untrained = write_checkpoint(
        untrained_root, 0, adapter, tokenizer, trainer_config(untrained_root, scratch_model)
    )

    full_model_dir = workdir() / "t5-full-finetune"
    full = tiny_t5(tokenizer)
    train_steps(full, tokenizer, "seq2seq", steps=120, lr=5e-3)
    full.save_pretrained(full_model_dir)
    tokenizer.save_pretrained(full_model_dir)

    # LoRA on top of the full fine-tune, built by the trainer's own model code from spec.model.name
    trained_root = workdir() / "t5-trained"
    config = trainer_config(trained_root, {"name": str(full_model_dir), "init": "pretrained"})
    adapter = load_model(config.spec.model, config.spec.lora, trained_root).model
    train_steps(adapter, tokenizer, "seq2seq", steps=20, lr=3e-3, seed=1)
    trained = write_checkpoint(trained_root, 140, adapter, tokenizer, config)
    return T5Checkpoints(untrained=untrained, trained=trained, full_model_dir=full_model_dir)


@functools.cache
@one_torch_thread()
def gpt2_checkpoint() -> Path:
    tokenizer = tokenizer_for("causal")
    root = workdir() / "gpt2"
    base = tiny_gpt2(tokenizer)
    base.save_pretrained(root / layout.BASE_MODEL_DIR)
    adapter = with_lora(base, ["c_attn"], random_init=True)
    config = trainer_config(root, {"name": "tiny-gpt2", "init": "scratch", "config": {"model_type": "gpt2"}})
    return write_checkpoint(root, 10, adapter, tokenizer, config)
