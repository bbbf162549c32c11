"""Annealed Gaussian gradient noise (Neelakantan et al., 2015), `spec.training.gradientNoise`.

Once per optimizer step, after gradient accumulation (and the all-reduce) and before clipping,
every trainable gradient gets N(0, sigma_t^2) noise with sigma_t^2 = eta / (1 + t)^gamma, t the
optimizer step (0 for the first update). The noise comes from this object's own seeded
generators, never the global RNG, so adding noise does not shift dropout or data order, and its
state_dict (step + generator states) makes a resumed run draw exactly the same noise.

Ranks: with replicated gradients (ZeRO 0/1/2 after the reduction every rank applies the update
to its copy or its shard), give every rank the same seed so replicas stay identical; when each
rank noises a disjoint shard only, a per-rank seed (seed + rank) keeps shards independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from recipe_api.v1alpha1 import GradientNoiseSpec


class GradientNoise:
    def __init__(self, spec: GradientNoiseSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.step = 0  # optimizer steps noised so far: the t of the next call
        self._generators: dict[str, torch.Generator] = {}
        self._pending_states: dict[str, torch.Tensor] = {}

    def sigma(self, step: int | None = None) -> float:
        """Standard deviation of the noise at optimizer step `step` (default: the next one)."""
        if not self.spec.enabled:
            return 0.0
        t = self.step if step is None else step
        return math.sqrt(self.spec.eta / (1.0 + t) ** self.spec.gamma)

    def add_to_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> float:
        """Noise the `.grad` of every trainable parameter (frozen ones, e.g. a LoRA base model,
        are skipped), advance the step, and return the sigma used (for the metrics)."""
        grads = [p.grad for p in parameters if p.requires_grad and p.grad is not None]
        return self.add_to_tensors(grads)

    def add_to_tensors(self, gradients: Iterable[torch.Tensor]) -> float:
        """Noise gradient tensors in place (e.g. DeepSpeed's flat gradient partitions), advance
        the step, and return the sigma used. Call exactly once per optimizer step."""
        sigma = self.sigma()
        if sigma > 0.0:
            with torch.no_grad():
                for grad in gradients:
                    noise = torch.randn(
                        grad.shape,
                        generator=self._generator(grad.device),
                        device=grad.device,
                        dtype=grad.dtype,
                    )
                    grad.add_(noise, alpha=sigma)
        self.step += 1
        return sigma

    def state_dict(self) -> dict[str, Any]:
        states = dict(self._pending_states)
        states.update({device: gen.get_state() for device, gen in self._generators.items()})
        return {"step": self.step, "seed": self.seed, "generator_states": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.seed = int(state["seed"])
        self._generators.clear()
        self._pending_states = dict(state["generator_states"])

    def _generator(self, device: torch.device) -> torch.Generator:
        """One generator per device, created on first use, from a restored state if any."""
        key = str(device)
        if key not in self._generators:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            if key in self._pending_states:
                generator.set_state(self._pending_states.pop(key))
            self._generators[key] = generator
        return self._generators[key]
