"""The model and tokenizer a run trains, built from `spec.model` and `spec.lora`.

* `init: pretrained` loads `model.name` (a hub id, a directory such as a previously fully
  fine-tuned checkpoint's `model/`: that is how LoRA goes on top of an existing full fine-tune,
  or a GGUF model, converted once to a cached directory: `model_source`), with `model.config`
  as config overrides, and its tokenizer.
* `init: scratch` builds a random model from `model.config` (tests, the CPU quickstart). Its
  tokenizer is trained on the run's training recipes. Both are written once to
  `<checkpoint_dir>/base-model/` by rank 0 and every rank loads them from there, so all ranks
  start from identical weights, a resumed run from the same base, and an adapter always has its
  base next to it, offline (`checkpoint_layout`).

LoRA wraps the model with PEFT; `lora.targetModules: auto` picks the attention projections of
the architectures we know and otherwise asks the user to name them.

`packing_plan` decides whether the run may pack several recipes per row: only architectures and
attention kernels whose packed logits were verified equal to unpacked ones (`supports_packing`);
any other model trains on padded rows, with the reason logged, never silently wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from peft import LoraConfig, TaskType, get_peft_model
from recipe_api.v1alpha1 import LoraSpec, ModelSpec
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .checkpoint_layout import BASE_MODEL_DIR, TOKENIZER_DIR
from .data.packing import PACKING_VERIFIED_MODEL_TYPES, supports_packing
from .data.tokenizer import load_pretrained_tokenizer, special_token_ids, train_recipe_tokenizer
from .model_source import resolve_pretrained

Task = Literal["seq2seq", "causal"]
log = logging.getLogger(__name__)

# model_type -> LoRA target modules of `lora.targetModules: auto`. Decoder-only models (Llama,
# Mistral, Qwen2): every linear projection of attention and MLP. On SmolLM2-135M (docs/benchmarks.md,
# ablation) that is 4.9M trainable weights instead of 0.92M for q/v alone, and it is what makes a
# short CPU run learn the recipe format; each step costs more, but far fewer steps are needed.
# T5 and GPT-2 keep the attention query/value (the tiny scratch examples and tests).
_DECODER_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
AUTO_TARGET_MODULES: dict[str, list[str]] = {
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "umt5": ["q", "v"],
    "llama": _DECODER_LINEAR,
    "mistral": _DECODER_LINEAR,
    "qwen2": _DECODER_LINEAR,
    "gpt2": ["c_attn"],
}
DEFAULT_SCRATCH_VOCAB = 8000


@dataclass
class BuiltModel:
    model: Any  # a PreTrainedModel, or a PeftModel around one
    tokenizer: Any
    task: Task
    trainable_parameters: int
    total_parameters: int

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_parameters / max(1, self.total_parameters)


def resolve_task(model_spec: ModelSpec, model_config: Any) -> Task:
    """`model.task`, or for auto: seq2seq for encoder-decoder configs (T5), causal otherwise."""
    if model_spec.task != "auto":
        return model_spec.task
    return "seq2seq" if getattr(model_config, "is_encoder_decoder", False) else "causal"


def auto_model_class(task: Task) -> Any:
    return AutoModelForSeq2SeqLM if task == "seq2seq" else AutoModelForCausalLM


def lora_target_modules(lora: LoraSpec, model_type: str) -> list[str]:
    """The modules LoRA adapts; a one-line error naming the field when `auto` cannot choose."""
    if lora.target_modules != "auto":
        return list(lora.target_modules)
    if model_type not in AUTO_TARGET_MODULES:
        known = ", ".join(sorted(AUTO_TARGET_MODULES))
        raise ValueError(
            f"spec.lora.targetModules: auto knows {known} but not model_type {model_type!r}; "
            "list the attention projections to adapt, e.g. [q_proj, v_proj]"
        )
    return AUTO_TARGET_MODULES[model_type]


def write_scratch_base(
    model_spec: ModelSpec, checkpoint_dir: str | Path, corpus: Callable[[], Iterable[str]]
) -> Path:
    """Train the tokenizer on `corpus()` and save it with a freshly initialised model under
    `<checkpoint_dir>/base-model/` (rank 0 only, once: an existing base is reused)."""

    base = Path(checkpoint_dir) / BASE_MODEL_DIR
    if (base / "config.json").is_file() and (base / TOKENIZER_DIR).is_dir():
        return base
    overrides = dict(model_spec.config)
    model_type = overrides.pop("model_type")
    draft = AutoConfig.for_model(model_type, **overrides)
    task = resolve_task(model_spec, draft)
    vocab = int(overrides.get("vocab_size", DEFAULT_SCRATCH_VOCAB))
    tokenizer = train_recipe_tokenizer(corpus(), vocab_size=vocab, kind=task)
    config = AutoConfig.for_model(model_type, **{**overrides, **special_token_ids(tokenizer, task)})
    model = auto_model_class(task).from_config(config)
    tmp = base.with_name(f".tmp-{BASE_MODEL_DIR}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
    tmp.rename(base)
    return base


def load_model(
    model_spec: ModelSpec,
    lora: LoraSpec,
    checkpoint_dir: str | Path,
    gradient_checkpointing: bool = False,
) -> BuiltModel:
    """The model to train (LoRA-wrapped when enabled) and its tokenizer. Scratch models must
    have been written with `write_scratch_base` first."""

    if model_spec.init == "scratch":
        source = Path(checkpoint_dir) / BASE_MODEL_DIR
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer_dir = source / TOKENIZER_DIR
    else:
        source = resolve_pretrained(model_spec.name)
        overrides = {k: v for k, v in model_spec.config.items() if k != "model_type"}
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, **overrides)
        tokenizer_dir = _tokenizer_location(source)
    task = resolve_task(model_spec, config)
    model = auto_model_class(task).from_pretrained(source, config=config, trust_remote_code=False)
    tokenizer = load_pretrained_tokenizer(str(tokenizer_dir))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if lora.enabled:
        if gradient_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings would cut the checkpointed graph
        peft_config = LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if task == "seq2seq" else TaskType.CAUSAL_LM,
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora_target_modules(lora, config.model_type),
        )
        model = get_peft_model(model, peft_config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return BuiltModel(model, tokenizer, task, trainable, total)


def packing_plan(requested: bool, model_config: Any) -> tuple[bool, str | None]:
    """(pack?, why not) for `training.packing: requested` on a model with this config: packing is
    used only where `supports_packing` vouches for it; the reason is for the log."""

    if not requested:
        return False, None
    if supports_packing(model_config):
        return True, None
    model_type = getattr(model_config, "model_type", None)
    if model_type not in PACKING_VERIFIED_MODEL_TYPES:
        why = f"model_type {model_type!r} is not verified to give the same logits packed"
    else:
        why = f"attention kernel {getattr(model_config, '_attn_implementation', None)!r} takes no 4-D mask"
    return False, f"spec.training.packing: {why}; training on padded rows instead"


def decoder_start_token_id(model_config: Any, tokenizer: Any) -> int | None:
    """The id a seq2seq decoder starts from: the model's own (BART: </s>, T5: <pad>), else the pad
    id (T5's convention). None for causal models."""
    if not getattr(model_config, "is_encoder_decoder", False):
        return None
    start = getattr(model_config, "decoder_start_token_id", None)
    return int(start) if start is not None else tokenizer.pad_token_id


def _tokenizer_location(model_name: str) -> str:
    """A model directory holds its tokenizer; a model/ inside one of our checkpoints has it in the
    sibling tokenizer/ (so `model.name: <ckpt>/model` works); hub ids are passed through."""
    path = Path(model_name)
    if path.is_dir() and not (path / "tokenizer_config.json").is_file():
        sibling = path.parent / TOKENIZER_DIR
        if sibling.is_dir():
            return str(sibling)
    return model_name
