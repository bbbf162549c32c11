"""A minimal manifest (only the two required fields) and a helper to mutate it per test case."""

from __future__ import annotations

import copy

MINIMAL = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "minimal"},
    "spec": {"model": {"name": "google/flan-t5-small"}, "dataset": {"path": "/data/recipes.csv"}},
}


def minimal_manifest() -> dict:
    return copy.deepcopy(MINIMAL)


def with_value(manifest: dict, dotted: str, value) -> dict:
    """Set `spec.a.b[1].c`-style paths (creating mappings on the way)."""
    node = manifest
    parts = dotted.replace("]", "").replace("[", ".").split(".")
    for i, part in enumerate(parts[:-1]):
        key = int(part) if part.isdigit() else part
        if isinstance(node, dict) and key not in node:
            node[key] = [] if parts[i + 1].isdigit() else {}
        node = node[key]
    last = parts[-1]
    node[int(last) if last.isdigit() else last] = value
    return manifest
