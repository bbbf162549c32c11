"""Specs the CRD admits but the API server refuses when the operator creates the children
(issue 10): they fail validation up front, naming the field, instead of a 422 mid-launch."""

from __future__ import annotations

import copy

import pytest
from recipe_api.validation import InvalidSpecError, parse_job

BASE = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}},
}


def manifest(name: str = "flan", **resources) -> dict:
    body = copy.deepcopy(BASE)
    body["metadata"]["name"] = name
    body["spec"]["resources"] = resources
    return body


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (manifest("1st-run"), "metadata.name"),  # a Service name must start with a letter
        (manifest(cpu="1.2.3"), "spec.resources.cpu"),
        (manifest(memory="64Gii"), "spec.resources.memory"),
        (manifest(memory="-1Gi"), "spec.resources.memory"),
        (
            {**manifest(), "spec": {**manifest()["spec"], "checkpoint": {"volume": {"size": "1.5.0Gi"}}}},
            "spec.checkpoint.volume.size",
        ),
    ],
)
def test_what_the_api_server_would_refuse_is_an_invalid_spec_naming_the_field(body, path):
    with pytest.raises(InvalidSpecError) as exc:
        parse_job(body)
    assert [e.path for e in exc.value.errors] == [path]


@pytest.mark.parametrize("quantity", ["8", "500m", "64Gi", "1.5", ".5", "1e3", "0.5Gi", 2])
def test_every_kubernetes_quantity_form_is_accepted(quantity):
    assert parse_job(manifest("run-1", cpu=quantity, memory=quantity))
