"""Issue 23, finding 4: creating a job is creating pods. The chart's `policy` values let an
administrator narrow what a job may ask for; the webhook refuses the rest in one line naming the
field, and every reconcile checks the same (with the webhook off, such a job ends Failed)."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from recipe_api.validation import AdmissionPolicy, parse_job
from recipe_operator import reconcile
from recipe_operator.builders import build_job
from recipe_operator.settings import Settings
from recipe_operator.webhook import rtj_validate

POLICY_ENV = {
    "RECIPE_OPERATOR_ALLOWED_IMAGE_PREFIXES": "registry.example.com/ml/, ghcr.io/chefgenius/",
    "RECIPE_OPERATOR_ALLOWED_CLAIMS": "recipes,team-checkpoints",
    "RECIPE_OPERATOR_ALLOWED_PRIORITY_CLASSES": "batch-low",
}


def body(**resources) -> dict:
    spec = {"model": {"name": "m"}, "dataset": {"path": "/data/r.csv", "volume": {"claimName": "recipes"}}}
    spec["resources"] = resources
    claim = resources.pop("checkpoint_claim", None)
    if claim:
        spec["checkpoint"] = {"volume": {"claimName": claim}}
    return {
        "apiVersion": "training.chefgenius.io/v1alpha1",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": "flan", "namespace": "ml", "uid": "u-1"},
        "spec": spec,
    }


class _Operator:
    def __init__(self, settings: Settings):
        self.settings = settings


def memo() -> kopf.Memo:
    return kopf.Memo(operator=_Operator(Settings.from_env(POLICY_ENV)))


def test_the_chart_variables_become_the_policy():
    assert Settings.from_env(POLICY_ENV).policy == AdmissionPolicy(
        ("registry.example.com/ml/", "ghcr.io/chefgenius/"), ("recipes", "team-checkpoints"), ("batch-low",)
    )
    assert Settings.from_env({}).policy == AdmissionPolicy()  # nothing set: anything goes, as before


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"image": "docker.io/attacker/miner:latest"}, "spec.resources.image"),
        ({"image": "registry.example.com/mlx/evil"}, "spec.resources.image"),  # a prefix, not a substring
        ({"priorityClassName": "system-cluster-critical"}, "spec.resources.priorityClassName"),
        ({"checkpoint_claim": "other-teams-claim"}, "spec.checkpoint.volume.claimName"),
    ],
)
def test_the_webhook_refuses_what_the_policy_does_not_allow_in_one_line(resources, field):
    with pytest.raises(kopf.AdmissionError) as exc:
        rtj_validate(body=body(**resources), operation="CREATE", memo=memo())
    message = str(exc.value)
    assert message.startswith(field) and "\n" not in message and "allowed" in message


def test_the_webhook_admits_what_the_policy_allows():
    allowed = body(
        image="registry.example.com/ml/trainer:1",
        priorityClassName="batch-low",
        checkpoint_claim="team-checkpoints",
    )
    assert rtj_validate(body=allowed, operation="CREATE", memo=memo()) is None
    assert rtj_validate(body=body(), operation="CREATE", memo=memo()) is None  # the default image


def test_reconcile_applies_the_same_policy_when_the_webhook_is_off():
    job, errors = asyncio.run(
        reconcile.validate_off_loop(body(image="docker.io/x/y"), Settings.from_env(POLICY_ENV))
    )
    assert job is None and [e.path for e in errors] == ["spec.resources.image"]


def test_trainer_pods_get_no_service_account_token():
    pod_spec = build_job(parse_job(body()), "u-1", 1, "trainer:1")["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
