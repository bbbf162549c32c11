"""The checked-in CRD is what `make crds` writes, is structural, and enforces the schema.

Manifests are validated against the CRD's own openAPIV3Schema (not only pydantic), so a
mistake in CRD rendering shows up as an example the API server would reject.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from manifest_fixtures import MINIMAL, with_value
from recipe_api.crd import build_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "recipetrainingjobs.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _as_json_schema(node):
    """OpenAPI v3.0 (as Kubernetes reads it) -> draft-4 JSON Schema, pruning unknown fields."""
    if isinstance(node, list):
        return [_as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_json_schema(v) if k in ("items", "additionalProperties") else v for k, v in node.items()}
    if "properties" in node:
        out["properties"] = {k: _as_json_schema(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@pytest.fixture(scope="module")
def crd_validator():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft4Validator(_as_json_schema(schema))


def test_checked_in_crd_matches_the_models():
    assert CRD_FILE.read_text() == render_crd_yaml(), "crds/ drifted from api/: run `make crds`"


def test_crd_passes_kubernetes_validate_strict():
    kubernetes_validate.validate(yaml.safe_load(CRD_FILE.read_text()), "1.35.0", strict=True)


def _walk(node, path="schema"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_crd_schema_is_structural():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if not isinstance(node, dict):
            continue
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node, path
        is_schema_node = path.endswith(
            ("]", "openAPIV3Schema", "schema", "items", "additionalProperties")
        ) or (".properties." in path and not path.endswith(".properties"))
        if is_schema_node and not path.endswith(".properties"):
            typed = (
                "type" in node
                or node.get("x-kubernetes-int-or-string")
                or node.get("x-kubernetes-preserve-unknown-fields")
            )
            assert typed, f"{path} has no type"


def test_crd_keeps_descriptions_names_and_columns():
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    r = spec_schema["properties"]["lora"]["properties"]["r"]
    assert r["description"] and r["minimum"] == 1 and r["maximum"] == 1024
    assert spec_schema["properties"]["training"]["properties"]["precision"]["enum"] == [
        "auto",
        "bf16",
        "fp16",
        "fp32",
    ]
    assert crd["spec"]["names"]["shortNames"] == ["rtj"] and crd["spec"]["names"]["categories"] == ["all"]
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == [
        "Phase",
        "Progress",
        "Loss",
        "Restarts",
        "Age",
    ]
    assert version["subresources"] == {"status": {}}
    assert version["schema"]["openAPIV3Schema"]["properties"]["status"][
        "x-kubernetes-preserve-unknown-fields"
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate_against_the_crd_schema(example, crd_validator):
    for doc in yaml.safe_load_all(example.read_text()):
        crd_validator.validate(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.lora.r", 0),
        ("spec.training.precision", "fp8"),
        ("spec.lora.rank", 3),
        ("spec.dataset.validationFraction", 1.0),
        ("spec.resources.cpu", True),
    ],
)
def test_crd_schema_rejects_what_the_api_server_must_reject(crd_validator, path, value):
    with pytest.raises(jsonschema.ValidationError):
        crd_validator.validate(with_value(copy.deepcopy(MINIMAL), path, value))


def test_crd_schema_accepts_a_minimal_manifest(crd_validator):
    crd_validator.validate(MINIMAL)
