"""The training wing: the loop (`recipe.TrainingRecipe`) and the components only it runs.

The forward pass and its loss call, the learning-rate schedule, gradient noise, the DeepSpeed
config, writing and resuming checkpoints, seeding, the Prometheus metrics, notifications and the
termination log. What several wings read (the checkpoint and run-directory layouts, the run log,
the model, generation, the loss and the recipe grammar) sits one level up, beside `data/`.

May import: those shared top-level modules and `data`. Never `evaluation`, `local` or `commands`
(pyproject.toml's import-linter contracts keep it so).
"""
