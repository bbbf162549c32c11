"""`recipe-train`: one console script, one sub-command per user task.

Each sub-command lives in its own module under `recipe_trainer.commands` exposing
`add_arguments(parser)` and `run(args) -> int`. `build_parser` imports every command module (for
its options), so a command module imports at its top only what is cheap, and its heavy imports
(torch, transformers, numpy, evaluation) inside `run`: measured with `python -X importtime`,
numpy alone adds 0.2-0.4 s to the start of every command, torch several seconds. A build without
a command's module (`ModuleNotFoundError` for that module) still runs the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command, module, one-line help). `data` has sub-commands of its own inside its module.
COMMANDS: list[tuple[str, str, str]] = [
    ("validate", "validate", "check RecipeTrainingJob manifests against the API"),
    ("local", "local", "run a RecipeTrainingJob manifest on this machine (CPU or GPUs)"),
    ("train", "train", "the in-pod entry point the DeepSpeed launcher starts on every rank"),
    ("data", "data", "inspect a recipe dataset: counts, drop reasons, scores, samples"),
    ("generate", "generate", "generate a recipe from a trained checkpoint"),
    ("eval", "evaluate", "evaluate a checkpoint: loss, perplexity, quality, ROUGE-L, BLEU"),
    ("compare", "compare", "compare two checkpoints with paired bootstrap intervals"),
    ("score", "score", "score recipes in a CSV or JSON-lines file: overall and every sub-score"),
    ("export", "export", "export a checkpoint's adapter, or the merged model"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recipe-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        try:
            importlib.import_module(f"recipe_trainer.commands.{module}").add_arguments(sub_parser)
        except ModuleNotFoundError as exc:
            if exc.name != f"recipe_trainer.commands.{module}":
                raise
            sub_parser.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", False):
        print(f"recipe-train {args.command}: not available in this build", file=sys.stderr)
        return 2
    module = importlib.import_module(f"recipe_trainer.commands.{args._module}")
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
