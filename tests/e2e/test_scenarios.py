"""The behaviour scenarios of tests/operator, on a real cluster (real Job controller, kubelet,
scheduler and garbage collector). See conftest.py for what enables them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from e2e.conftest import on_local_cluster
from e2e.scenario_helpers import E2E_GRACE_SECONDS
from polling import wait_for as poll
from recipe_api.contract import LABEL_ATTEMPT
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 120.0, what: str = "condition") -> T:
    """A real cluster moves in seconds, not milliseconds: poll less often and wait longer."""
    return poll(check, timeout=timeout, what=what, interval=1.0)


def manifest(
    name: str, ns: str, image: str = "registry.invalid/chef-genius/trainer:none", **spec: Any
) -> dict:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"name": "tiny", "init": "scratch", "config": {"model_type": "t5", "d_model": 32}},
            "dataset": {"path": "/data/recipes.csv"},
            "resources": {"image": image, "nodes": 1, "gpusPerNode": 0, "cpu": "100m", "memory": "256Mi"},
            "checkpoint": {"volume": {"size": "1Gi"}},
            "runPolicy": {"terminationGracePeriodSeconds": E2E_GRACE_SECONDS},
        },
    }
    for key, value in spec.items():
        merged = isinstance(value, dict) and isinstance(body["spec"].get(key), dict)
        body["spec"][key] = {**body["spec"][key], **value} if merged else value
    return body


class Cluster:
    def __init__(self, api, ns: str):
        import kubernetes

        self.ns = ns
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self.ApiException = kubernetes.client.exceptions.ApiException

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, self.ns, PLURAL, body)

    def rtj(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(API_GROUP, API_VERSION, self.ns, PLURAL, name)

    def status(self, name: str) -> dict:
        return self.rtj(name).get("status") or {}

    def patch_spec(self, name: str, spec: dict) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, self.ns, PLURAL, name, {"spec": spec}
        )

    def job(self, name: str):
        try:
            return self.batch.read_namespaced_job(name, self.ns)
        except self.ApiException as exc:
            if exc.status == 404:
                return None
            raise


@pytest.fixture()
def cluster(api, operator):
    return Cluster(api, operator)


def test_a_job_gets_owned_children_and_launches(cluster):
    created = cluster.create(manifest("owned", cluster.ns))
    job = wait_for(lambda: cluster.job("owned"), what="the Job")
    uid = created["metadata"]["uid"]
    assert job.metadata.owner_references[0].uid == uid and job.spec.completion_mode == "Indexed"
    assert (
        cluster.core.read_namespaced_config_map("owned-config", cluster.ns).metadata.owner_references[0].uid
        == uid
    )
    assert cluster.core.read_namespaced_service("owned", cluster.ns).spec.cluster_ip == "None"
    assert cluster.core.read_namespaced_persistent_volume_claim("owned-checkpoints", cluster.ns)
    wait_for(lambda: cluster.status("owned").get("phase") in ("Launching", "Running"), what="Launching")


def _webhook_installed(api) -> bool:
    import kubernetes

    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    hooks = admission.list_validating_webhook_configuration().items
    return any(
        w.name == "validate.recipetrainingjobs.training.chefgenius.io"
        for h in hooks
        for w in h.webhooks or []
    )


def test_an_invalid_spec_fails_with_the_field_path_and_no_job(api, cluster):
    """With the chart's webhook the API server refuses it; without, the operator fails it."""
    body = manifest("invalid", cluster.ns, training={"microBatchSize": 3, "globalBatchSize": 10})
    if _webhook_installed(api):
        with pytest.raises(cluster.ApiException) as exc:
            cluster.create(body)
        assert "spec.training.globalBatchSize" in exc.value.body
        return
    cluster.create(body)
    st = wait_for(lambda: (s := cluster.status("invalid")).get("phase") == "Failed" and s, what="Failed")
    assert any(c["type"] == "InvalidSpec" and "globalBatchSize" in c["message"] for c in st["conditions"])
    assert cluster.job("invalid") is None


def test_an_image_that_cannot_be_pulled_fails_after_the_pending_timeout(cluster):
    if on_local_cluster():
        pytest.skip("kwok's pods pull no images: needs a cluster with kubelets")
    cluster.create(manifest("nopull", cluster.ns, runPolicy={"pendingTimeoutSeconds": 20}))
    st = wait_for(
        lambda: (s := cluster.status("nopull")).get("phase") == "Failed" and s, timeout=180, what="Failed"
    )
    assert st["failure"]["reason"] in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")


def test_suspend_keeps_the_checkpoint_volume_and_unsuspend_starts_a_new_attempt(cluster):
    cluster.create(manifest("pausable", cluster.ns))
    wait_for(lambda: cluster.job("pausable"), what="the Job")
    cluster.patch_spec("pausable", {"suspend": True})
    wait_for(lambda: cluster.status("pausable").get("phase") == "Suspended", what="Suspended")
    wait_for(lambda: cluster.job("pausable") is None, timeout=180, what="the Job gone")
    assert cluster.core.read_namespaced_persistent_volume_claim("pausable-checkpoints", cluster.ns)
    cluster.patch_spec("pausable", {"suspend": False})
    job = wait_for(
        lambda: (j := cluster.job("pausable")) and j.metadata.labels[LABEL_ATTEMPT] == "2" and j,
        what="attempt 2",
    )
    assert job is not None


@pytest.mark.skipif(not os.environ.get("RECIPE_E2E_TRAINER_IMAGE"), reason="set RECIPE_E2E_TRAINER_IMAGE")
def test_a_real_trainer_runs_to_succeeded(cluster):
    """Needs a dataset: the quickstart sample baked into the image at /data (see examples/)."""
    body = manifest(
        "real",
        cluster.ns,
        image=os.environ["RECIPE_E2E_TRAINER_IMAGE"],
        training={"maxSteps": 4, "microBatchSize": 2, "gradientAccumulationSteps": 1, "precision": "fp32"},
        resources={
            "image": os.environ["RECIPE_E2E_TRAINER_IMAGE"],
            "nodes": 1,
            "gpusPerNode": 0,
            "cpu": "1",
            "memory": "2Gi",
        },
    )
    cluster.create(body)
    wait_for(lambda: cluster.status("real").get("phase") == "Running", timeout=600, what="Running")
    st = wait_for(
        lambda: (s := cluster.status("real")).get("phase") in ("Succeeded", "Failed") and s,
        timeout=1800,
        what="end",
    )
    assert st["phase"] == "Succeeded", st.get("failure")
