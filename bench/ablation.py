"""What each training improvement is worth on a real model: the demo configuration
(examples/smollm2-lora-cpu.yaml, LoRA on SmolLM2-135M-Instruct) with each improvement switched off
in turn, all off, and all on, and each default that is a choice (LoRA targets, gradient noise,
which is off by default) against its alternative; same seed, same number of optimizer steps.

    nice -n 10 .venv/bin/python bench/ablation.py --steps 25 --samples 16 --max-new-tokens 256 \
        --threads 1 --jobs 2 --write docs/benchmarks.md

Each configuration trains in one single-rank `recipe-train train` under the DeepSpeed launcher
(on CPU, launched by `recipe_api.launch.trainer_launch` exactly as local mode launches it), then its last checkpoint is evaluated on the demo's held-out
validation recipes: validation loss (plain cross-entropy per target token, per recipe), and for
`--samples` recipes generated greedily from the same prompts, the quality score and ROUGE-L.
Intervals are paired bootstrap 95% intervals of the difference from "all on" over the same
recipes; the base model (no training) is evaluated too, and "learned" is each configuration's
validation-loss drop from the base as a share of the all-on drop. `--write FILE` replaces the
section between the ablation markers of FILE (docs/benchmarks.md) with the table and its command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from recipe_api.launch import free_port, trainer_launch
from recipe_trainer.local.process_tree import guarded_session
from recipe_trainer.training.deepspeed_config import deep_merge

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "smollm2-lora-cpu.yaml"
START, END = "<!-- ablation:start -->", "<!-- ablation:end -->"

OFF = {
    "curriculum": {"curriculum": {"enabled": False}},
    "quality threshold": {"curriculum": {"qualityThreshold": {"start": 0.0, "end": 0.0}}},
    "augmentation": {"augmentation": {"probability": 0.0}},
    "label smoothing": {"training": {"labelSmoothing": 0.0}},
    "warmup + cosine restarts": {"training": {"scheduler": {"type": "constant", "warmupSteps": 0}}},
}
# Defaults that are choices rather than improvements, each against the alternative it replaced.
OTHER_DEFAULTS = {
    "LoRA on q_proj, v_proj only (the old auto)": {"lora": {"targetModules": ["q_proj", "v_proj"]}},
    # off by default since this table showed it slowing LoRA (docs/benchmarks.md)
    "gradient noise on (eta 0.03)": {"training": {"gradientNoise": {"enabled": True}}},
}


def configurations() -> dict[str, dict]:
    configs = {"all on": {}}
    configs.update({f"{name} off": change for name, change in OFF.items()})
    all_off: dict = {}
    for change in OFF.values():
        all_off = deep_merge(all_off, change)
    configs["all off"] = all_off
    configs.update(OTHER_DEFAULTS)
    return configs


def demo_steps() -> int:
    import yaml

    return yaml.safe_load(DEMO.read_text())["spec"]["training"]["maxSteps"]


def demo_spec(steps: int) -> dict:
    """The demo's spec, with validation and checkpoints only at the end (the bench evaluates)."""
    import yaml

    spec = yaml.safe_load(DEMO.read_text())["spec"]
    spec["dataset"]["path"] = str(REPO / spec["dataset"]["path"])
    return deep_merge(
        spec,
        {
            "training": {"maxSteps": steps},
            "validation": {"everySteps": 10**6, "samples": 0, "maxBatches": 1},
            "checkpoint": {"everySteps": 10**6, "keepLast": 1},
            "metrics": {"port": free_port()},
        },
    )


def train(name: str, spec: dict, out: Path, threads: int) -> Path:
    """One configuration in its own single-rank trainer process; returns its checkpoint root."""
    from recipe_api.trainer_config import TrainerConfig, TrainerRuntime
    from recipe_api.v1alpha1 import RecipeTrainingJobSpec
    from recipe_trainer.run_layout import CHECKPOINTS_DIR, CONFIG_FILE, OUTPUT_FILE, TERMINATION_FILE

    spec = deep_merge(spec, {"metrics": {"port": free_port()}})  # runs may train side by side
    run = out / run_name(name)
    run.mkdir(parents=True, exist_ok=True)
    config = TrainerConfig(
        name=run.name,
        namespace=None,
        spec=RecipeTrainingJobSpec.model_validate(spec),
        runtime=TrainerRuntime(
            checkpoint_dir=str(run / CHECKPOINTS_DIR),
            run_dir=str(run),
            termination_log=str(run / TERMINATION_FILE),
        ),
    )
    (run / CONFIG_FILE).write_text(config.to_yaml())
    launch = trainer_launch(
        config,
        run / CONFIG_FILE,
        master_port=free_port(),
        processes=1,
        on_gpu=False,
        cpus=threads,
        python=sys.executable,
    )
    env = os.environ | {"TORCH_EXTENSIONS_DIR": str(REPO / ".cache" / "torch_extensions")} | launch.env
    started = time.monotonic()
    (run / OUTPUT_FILE).unlink(missing_ok=True)
    # As local mode runs its trainer: the whole process tree dies with this script, however it ends.
    with guarded_session(launch.argv, env, run / OUTPUT_FILE) as process:
        code = process.wait()
    if code != 0:
        raise SystemExit(f"{name}: training failed (exit {code}), see {run / OUTPUT_FILE}")
    print(f"{name}: trained in {time.monotonic() - started:.0f} s", flush=True)
    return run / CHECKPOINTS_DIR


def run_name(name: str) -> str:
    """A configuration's run directory name."""
    return "".join(c if c.isalnum() else "-" for c in name.replace("+", "and")).strip("-")


def evaluate(loaded, examples, samples: int, max_new_tokens: int) -> dict[str, list[float]]:
    """Per-recipe validation loss over `examples`, quality and ROUGE-L of `samples` of them."""
    from recipe_trainer.evaluation.checkpoint_eval import (
        generate_and_score,
        loss_and_perplexity,
        pick_samples,
    )
    from recipe_trainer.inference import lengths_of

    max_source, max_target = lengths_of(loaded)
    losses = [loss_and_perplexity(loaded, [example], max_source, max_target)[0] for example in examples]
    indices = pick_samples(len(examples), samples, seed=0)
    scored = generate_and_score(loaded, examples, indices, max_source, max_new_tokens)
    return {
        "loss": losses,
        "quality": [s.scores["quality"] for s in scored],
        "rouge_l": [s.scores["rouge_l"] for s in scored],
        "generated": [s.generated for s in scored],
    }


def table(results: dict[str, dict], base: dict, command: str, steps: int, tokens: dict[str, int]) -> str:
    from recipe_trainer.evaluation.bootstrap import paired_bootstrap

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    reference = results["all on"]
    drop_on = mean(base["loss"]) - mean(reference["loss"])
    lines = [
        "| configuration | validation loss | vs all on (95% CI) | learned | quality | vs all on (95% CI) "
        "| ROUGE-L | vs all on (95% CI) | tokens trained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {"base model (untrained)": base, **results}
    for name, scores in rows.items():
        cells = [name]
        for metric in ("loss", "quality", "rouge_l"):
            cells.append(f"{mean(scores[metric]):.4f}")
            if name == "all on":
                cells.append("-")
            else:
                d = paired_bootstrap(reference[metric], scores[metric], seed=0)
                star = " *" if d.excludes_zero else ""
                cells.append(f"{d.difference:+.4f} [{d.low:+.4f}, {d.high:+.4f}]{star}")
            if metric == "loss":
                learned = (mean(base["loss"]) - mean(scores["loss"])) / drop_on if drop_on else float("nan")
                cells.append(f"{learned:.0%}")
        cells.append(f"{tokens.get(name, 0):,}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        [
            f"Budget: {steps} optimizer steps per configuration (the demo runs {demo_steps()}); seed 42; "
            f"{len(reference['loss'])} held-out recipes for the loss, {len(reference['quality'])} generated "
            'recipes for quality and ROUGE-L. `*`: the interval excludes zero. "learned": validation-loss '
            "drop from the base model as a share of the all-on drop.",
            "",
            f"`{command}`",
            "",
            *lines,
        ]
    )


def tokens_trained(run_root: Path) -> int:
    from recipe_trainer.run_log import read_run_log

    return sum(e.get("tokens", 0) for e in read_run_log(run_root.parent) if e.get("event") == "step")


def write_section(path: Path, text: str) -> None:
    """Replace the ablation section of `path` (between the markers), or append one."""
    document = path.read_text() if path.is_file() else ""
    section = f"{START}\n{text}\n{END}"
    if START in document and END in document:
        head, rest = document.split(START, 1)
        document = head + section + rest.split(END, 1)[1]
    else:
        document = (
            document.rstrip("\n")
            + "\n\n## Ablation: each training improvement on the real model\n\n"
            + section
            + "\n"
        )
    path.write_text(document)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=20, help="optimizer steps per configuration (token budget)"
    )
    parser.add_argument("--samples", type=int, default=8, help="recipes generated per configuration")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="longest generated recipe")
    parser.add_argument(
        "--eval-recipes", type=int, default=None, help="held-out recipes for the loss (default: all of them)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads of each run (1 is faster when other work keeps the cores busy)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="configurations trained at once")
    parser.add_argument("--only", nargs="*", default=None, help="configuration names to run (default: all)")
    parser.add_argument("--out", default=str(REPO / "runs" / "ablation"), help="where runs and results go")
    parser.add_argument(
        "--write", default=None, metavar="FILE", help="put the table into FILE's ablation section"
    )
    args = parser.parse_args()

    from recipe_api.v1alpha1 import RecipeTrainingJobSpec
    from recipe_trainer.evaluation.checkpoint_eval import load_examples
    from recipe_trainer.inference import load_checkpoint, load_pretrained_model, quiet_loading

    quiet_loading()
    out = Path(args.out)
    spec = demo_spec(args.steps)
    configs = {k: v for k, v in configurations().items() if args.only is None or k in args.only}
    examples = load_examples(RecipeTrainingJobSpec.model_validate(spec), "causal", "validation")
    examples = examples[: args.eval_recipes] if args.eval_recipes else examples
    results, tokens = {}, {}
    # Training runs are separate processes: `--jobs` of them at once (one core each with
    # --threads 1); evaluation then runs here, one checkpoint at a time.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = {
            name: pool.submit(train, name, deep_merge(spec, change), out, args.threads)
            for name, change in configs.items()
        }
        roots = {name: run.result() for name, run in runs.items()}
    for name, root in roots.items():
        results[name] = evaluate(load_checkpoint(root), examples, args.samples, args.max_new_tokens)
        tokens[name] = tokens_trained(root)
        print(f"{name}: loss {sum(results[name]['loss']) / len(examples):.4f}", flush=True)
    from recipe_trainer.checkpoint_layout import read_trainer_config, resolve_checkpoint
    from recipe_trainer.run_layout import CHECKPOINTS_DIR

    config = read_trainer_config(resolve_checkpoint(out / run_name(next(iter(results))) / CHECKPOINTS_DIR))
    base = evaluate(
        load_pretrained_model(spec["model"]["name"], config=config),
        examples,
        args.samples,
        args.max_new_tokens,
    )
    (out / "results.json").write_text(json.dumps({"base": base, **results}, indent=1))
    command = "nice -n 10 .venv/bin/python bench/ablation.py " + shlex.join(sys.argv[1:])
    text = table(results, base, command, args.steps, tokens)
    print(text)
    if args.write:
        write_section(Path(args.write), text)
        print(f"wrote the ablation section of {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
