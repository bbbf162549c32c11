"""Real (non-padding) tokens per second of our trainer against the seed's way of training:
Hugging Face `Trainer` + PEFT LoRA with every example padded to the max lengths, no packing.

Same model (the quickstart's scratch T5 with LoRA r=16 on q,v; both start from the same saved
base), same token ids (the trainer's tokenized training split), same micro-batch of rows, same
machine, one process, one run. Each side's time is the wall time between optimizer steps after a
few warm-up steps, data preparation of each step included; tokens are the real source + target
tokens of the steps timed.

    .venv/bin/python bench/trainer_throughput.py [--steps 40] [--warmup 5] [--rows 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart-cpu.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trainer_config(root: Path, steps: int, rows: int):
    from recipe_api import load_jobs
    from recipe_api.trainer_config import TrainerConfig, TrainerRuntime

    spec = load_jobs(QUICKSTART)[0].spec.model_copy(deep=True)
    spec.dataset.path = str(REPO / spec.dataset.path)
    t = spec.training
    t.max_steps, t.micro_batch_size, t.gradient_accumulation_steps = steps, rows, 1
    t.scheduler.warmup_steps = 0
    spec.lora.enabled, spec.lora.r, spec.lora.alpha, spec.lora.dropout = True, 16, 32, 0.05
    spec.curriculum.enabled = False  # both sides see every recipe
    spec.augmentation.probability = 0.0
    spec.validation.every_steps = spec.checkpoint.every_steps = 10**6
    spec.validation.samples, spec.validation.max_batches = 0, 1
    spec.metrics.port = free_port()
    runtime = TrainerRuntime(checkpoint_dir=str(root / "checkpoints"), run_dir=str(root))
    return TrainerConfig(name="bench", spec=spec, runtime=runtime)


def measure_ours(config, warmup: int) -> tuple[float, object]:
    """tokens/s of the recipe (DeepSpeed, packing), from its per-step log."""
    from recipe_trainer.recipe import TrainingRecipe, read_train_log

    recipe = TrainingRecipe(config)
    recipe.setup()
    recipe.train()
    steps = [e for e in read_train_log(config.runtime.run_dir) if e["event"] == "step"]
    timed = steps[warmup:]
    seconds = timed[-1]["time"] - steps[warmup - 1]["time"]
    return sum(e["tokens"] for e in timed) / seconds, recipe


def measure_baseline(recipe, steps: int, warmup: int, rows: int, output_dir: Path) -> float:
    """tokens/s of transformers.Trainer + PEFT on padded, unpacked examples."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from recipe_trainer.checkpoint_layout import BASE_MODEL_DIR
    from transformers import AutoModelForSeq2SeqLM, Trainer, TrainerCallback, TrainingArguments

    spec = recipe.spec
    t = spec.training
    pad = recipe.tokenizer.pad_token_id
    model = AutoModelForSeq2SeqLM.from_pretrained(Path(recipe.config.runtime.checkpoint_dir) / BASE_MODEL_DIR)
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM, r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q", "v"]
        ),
    )
    dataset = recipe.data.train.select_columns(["source_ids", "target_ids"])
    real_tokens: list[int] = []

    def collate(examples):
        def padded(key, width, value):
            return torch.tensor(
                [list(e[key][:width]) + [value] * (width - len(e[key][:width])) for e in examples]
            )

        real_tokens.append(sum(len(e["source_ids"]) + len(e["target_ids"]) for e in examples))
        input_ids = padded("source_ids", t.max_source_length, pad)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids != pad).long(),
            "labels": padded("target_ids", t.max_target_length, -100),
        }

    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter())

    arguments = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=rows,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        label_smoothing_factor=t.label_smoothing,
        lr_scheduler_type="constant",
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        seed=t.seed,
    )
    Trainer(
        model=model, args=arguments, train_dataset=dataset, data_collator=collate, callbacks=[StepClock()]
    ).train()
    timed_tokens = sum(real_tokens[warmup : len(step_times)])
    return timed_tokens / (step_times[-1] - step_times[warmup - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rows", type=int, default=8, help="rows (sequences) per micro-batch, both sides")
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    os.environ.update(
        {
            "DS_ACCELERATOR": "cpu",
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
            "OMP_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        ours, recipe = measure_ours(trainer_config(root, args.steps, args.rows), args.warmup)
        packing = recipe.data.packing_efficiency
        recipe.cleanup()
        baseline = measure_baseline(recipe, args.steps, args.warmup, args.rows, root / "hf")
    print(
        f"model: quickstart T5, LoRA r=16 q,v; {args.rows} rows per step, {args.steps} steps ({args.warmup} warm-up)"
    )
    print(f"ours (DeepSpeed ZeRO-2, packing {packing:.0%} real tokens): {ours:,.0f} real tokens/s")
    print(f"HF Trainer + PEFT, padded to max length:        {baseline:,.0f} real tokens/s")
    print(f"ratio: {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
