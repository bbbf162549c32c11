"""The Chef Genius trainer: data pipeline, DeepSpeed + LoRA training recipe, local mode and tools.

Heavy dependencies (torch, transformers, deepspeed) are imported inside the modules that need
them, so `recipe-train validate` stays fast and works without the [trainer] extra.
"""
