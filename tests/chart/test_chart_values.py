"""The chart's values are described once (`recipe_api.chart_values`): values.yaml, values.schema.json
and the README's values table are generated from that model, and must be what it generates now."""

from __future__ import annotations

import difflib

import jsonschema
import pytest
import yaml
from chart.helpers import CHART
from recipe_api.chart_files import generated, values_schema
from recipe_api.chart_values import Values


@pytest.mark.parametrize("name", ["values.yaml", "values.schema.json", "README.md"])
def test_generated_files_are_current(name):
    path = CHART / name
    expected = generated(CHART)[path]
    actual = path.read_text()
    diff = "".join(
        difflib.unified_diff(actual.splitlines(True), expected.splitlines(True), name, "generated")
    )
    assert actual == expected, f"{name} is stale: run `make chart-values`\n{diff[:3000]}"


def test_the_defaults_are_valid_values_and_the_schema_agrees_with_the_model():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert Values.model_validate(values).to_manifest() == Values().to_manifest()
    jsonschema.validate(values, values_schema())
    with pytest.raises(jsonschema.ValidationError, match="enable"):
        jsonschema.validate({**values, "serviceMonitor": {"enable": True}}, values_schema())
