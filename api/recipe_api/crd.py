"""Render the RecipeTrainingJob CustomResourceDefinition from the pydantic models.

The CRD is generated, never hand-edited: `make crds` writes `crds/recipetrainingjobs.yaml`
and a test fails when the checked-in file drifts. The generated schema is *structural*
(Kubernetes requires it): no `$ref`, no `anyOf` with types inside, `nullable` instead of
`null` branches, OpenAPI v3.0's boolean `exclusiveMinimum`. Descriptions are kept, so
`kubectl explain rtj.spec.lora.r` prints the same text as the pydantic field.

Defaults are deliberately not copied into the CRD: the API server would write them into
every stored object, and the models are the single place defaults live.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from .status import RecipeTrainingJobStatus
from .v1alpha1 import API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAMES, SINGULAR, RecipeTrainingJobSpec

_DROP_KEYS = {"title", "default", "additionalProperties_false"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Life-cycle phase."},
    {
        "name": "Progress",
        "type": "number",
        "jsonPath": ".status.progress.percent",
        "description": "Percent of planned optimizer steps done.",
    },
    {
        "name": "Loss",
        "type": "number",
        "jsonPath": ".status.progress.loss",
        "description": "Latest training loss.",
    },
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "description": "Gang restarts."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Val-Loss",
        "type": "number",
        "jsonPath": ".status.progress.validationLoss",
        "priority": 1,
        "description": "Latest validation loss.",
    },
    {
        "name": "Best-Val-Loss",
        "type": "number",
        "jsonPath": ".status.evaluation.validationLoss",
        "priority": 1,
        "description": "Final (best) validation loss.",
    },
    {
        "name": "Quality",
        "type": "number",
        "jsonPath": ".status.evaluation.quality",
        "priority": 1,
        "description": "Mean quality score of generated recipes at the end.",
    },
    {
        "name": "Attempt",
        "type": "integer",
        "jsonPath": ".status.attempt",
        "priority": 1,
        "description": "Current gang attempt.",
    },
]


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn one pydantic JSON-schema node into its structural OpenAPI v3.0 form."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "anyOf" in node:
        original = node.pop("anyOf")
        branches = [b for b in original if b.get("type") != "null"]
        nullable = len(branches) < len(original)
        if len(branches) == 1:
            merged = dict(branches[0])
            merged.update(node)
            node = merged
            if nullable:
                node["nullable"] = True
        else:  # a real union (e.g. "auto" or a list): typed by the models, opaque to the schema
            node = {"description": node.get("description", ""), "x-kubernetes-preserve-unknown-fields": True}
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        target.update(node)  # sibling keys (description) win over the definition's
        node = target
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if node.get("additionalProperties") is False or (
        node.get("additionalProperties") is True and "properties" in node
    ):
        del node["additionalProperties"]  # pruning does this; structural schemas forbid both
    if node.get("x-kubernetes-preserve-unknown-fields") and not node.get("description"):
        node.pop("description", None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    return out


def _schema_of(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)  # type: ignore[attr-defined]
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def build_openapi_schema() -> dict[str, Any]:
    spec = _schema_of(RecipeTrainingJobSpec)
    spec["description"] = (
        "What to train and how. Every field has a default except model.name and dataset.path."
    )
    status = _schema_of(RecipeTrainingJobStatus)
    status["description"] = "Written by the operator. kopf may keep its own bookkeeping here too."
    status["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "type": "object",
        "description": "A LoRA fine-tuning run of a recipe-generation model.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{API_GROUP}/{API_VERSION}"},
            "kind": {"type": "string", "description": KIND},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": build_openapi_schema()},
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from api/recipe_api (recipe_api.crd). Do not edit by hand.\n"


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "crds/recipetrainingjobs.yaml"
    with open(out, "w") as fh:
        fh.write(render_crd_yaml())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
