"""Issue 23, finding 1: a quantity string must not hang whoever validates it (the webhook, the
operator's reconcile, `recipe-train validate`). The old pattern `[0-9.]+` followed by more
optional digits backtracked quadratically: `"1" * 16000 + "x"` took 0.8 s to refuse, 1 MB about an
hour. Now the length is capped (the CRD carries the same maxLength) and the pattern is unambiguous."""

from __future__ import annotations

import copy

import pytest
from recipe_api import InvalidSpecError, parse_job
from recipe_api.base import QUANTITY_MAX_LENGTH, QUANTITY_PATTERN
from recipe_api.crd import build_crd

BASE = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d"}},
}
QUANTITY_FIELDS = {
    "spec.resources.cpu": ("resources", "cpu"),
    "spec.resources.memory": ("resources", "memory"),
    "spec.checkpoint.volume.size": ("checkpoint", "volume", "size"),
}


def with_quantity(path: str, value: str) -> dict:
    body = copy.deepcopy(BASE)
    node = body["spec"]
    *parents, leaf = QUANTITY_FIELDS[path]
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return body


@pytest.mark.timeout(120)  # the old pattern needed about an hour for this value
@pytest.mark.parametrize("path", sorted(QUANTITY_FIELDS))
def test_a_megabyte_quantity_is_refused_by_its_length_with_one_short_line(path):
    with pytest.raises(InvalidSpecError) as exc:
        parse_job(with_quantity(path, "1" * 1_000_000 + "x"))
    [error] = exc.value.errors
    assert error.path == path
    assert f"at most {QUANTITY_MAX_LENGTH}" in error.message and len(str(error)) < 200


@pytest.mark.timeout(120)  # quadratic: the old pattern took minutes for 200k characters
@pytest.mark.parametrize("tail", ["x", "e1x", ".1x", "Kix"])
def test_the_pattern_refuses_a_long_near_miss_in_one_pass(tail):
    """The pattern alone (without the length cap in front) must not backtrack: 200k digits then a
    character that ends the match."""
    assert QUANTITY_PATTERN.fullmatch("1" * 200_000 + tail) is None


@pytest.mark.parametrize(
    "value", ["1" * (QUANTITY_MAX_LENGTH - 2) + "Gi", "0." + "5" * (QUANTITY_MAX_LENGTH - 2)]
)
def test_a_quantity_at_the_cap_is_still_accepted(value):
    assert len(value) == QUANTITY_MAX_LENGTH
    assert parse_job(with_quantity("spec.resources.memory", value)).spec.resources.memory == value


def test_the_crd_refuses_long_quantities_before_the_webhook_or_operator_sees_them():
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, keys in QUANTITY_FIELDS.items():
        node = spec
        for key in keys:
            node = node["properties"][key]
        assert node["maxLength"] == QUANTITY_MAX_LENGTH, path
