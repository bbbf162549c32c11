"""Sub-commands of `recipe-train`, one module each (see recipe_trainer.cli)."""
