"""The Chef Genius trainer: data pipeline, DeepSpeed + LoRA training recipe, local mode and tools.

One folder a wing: `training/` (the loop), `evaluation/` (measuring a checkpoint), `local/`
(`recipe-train local` around the ranks), `data/` (the pipeline) and `commands/` (the CLI over them).
What several wings share sits at this level (layouts, run log, model, generation, loss, the recipe
grammar); pyproject.toml's import-linter contracts say who may import whom.

Heavy dependencies (torch, transformers, deepspeed) are imported inside the modules that need
them, so `recipe-train validate` stays fast and works without the [trainer] extra.
"""
