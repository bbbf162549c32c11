"""spec.resources' escape hatches for GPU clusters: each renders exactly into the trainer pods,
the webhook's validation refuses everything else naming the field, and the CRD documents each
for `kubectl explain rtj.spec.resources`."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from recipe_api.crd import build_crd
from recipe_api.validation import InvalidSpecError, parse_job
from recipe_operator import builders

BASE = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "m"}, "dataset": {"path": "/d/r.csv"}},
}
HATCHES = {
    "env": [
        {"name": "NCCL_SOCKET_IFNAME", "valueFrom": {"configMapKeyRef": {"name": "nccl", "key": "ifname"}}},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "nccl-ib"}}, {"prefix": "S3_", "secretRef": {"name": "s3"}}],
    "imagePullSecrets": [{"name": "registry"}],
    "extraResources": {"rdma/hca_shared_devices_a": 1, "nvidia.com/mig-1g.10gb": 2},
    "sharedMemory": "32Gi",
    "capabilities": {"add": ["IPC_LOCK"]},
}


def job_with(**resources):
    manifest = copy.deepcopy(BASE)
    manifest["spec"]["resources"] = resources
    return parse_job(manifest)


def pod_of(job) -> dict:
    return builders.build_job(job, "uid", 1, "trainer:1")["spec"]["template"]["spec"]


def test_every_escape_hatch_renders_exactly_into_the_pod_and_validates_strictly():
    job = job_with(gpusPerNode=4, **copy.deepcopy(HATCHES))
    manifest = builders.build_job(job, "uid", 1, "trainer:1")
    kubernetes_validate.validate(manifest, "1.35.0", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["env"][-2:] == HATCHES["env"]  # after the operator's, which they cannot replace
    assert container["envFrom"] == HATCHES["envFrom"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    for amounts in (container["resources"]["requests"], container["resources"]["limits"]):
        assert amounts["rdma/hca_shared_devices_a"] == "1" and amounts["nvidia.com/mig-1g.10gb"] == "2"
        assert amounts["nvidia.com/gpu"] == "4"
    dshm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}


def test_without_escape_hatches_the_pod_has_none_of_them():
    pod = pod_of(job_with())
    (container,) = pod["containers"]
    assert "envFrom" not in container and "imagePullSecrets" not in pod
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]["limits"]) == {"cpu", "memory", "nvidia.com/gpu"}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, 1000),  # the operator's image: its uid 1000
        ({"image": "registry.example/own:1"}, None),  # a user's image: its own USER (and HOME)
        ({"image": "registry.example/own:1", "runAsUser": 4242}, 4242),
        ({"runAsUser": 2000}, 2000),
    ],
)
def test_the_user_is_the_images_own_unless_runasuser_says_otherwise(resources, expected):
    pod = pod_of(job_with(**resources))
    (container,) = pod["containers"]
    assert pod["securityContext"].get("runAsUser") == expected
    assert container["securityContext"].get("runAsUser") == expected
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["runAsNonRoot"]
    assert pod["securityContext"]["fsGroup"] == (expected or 1000)  # the volume stays writable


# (resources, the field path the one-line error must name, a word of its message)
REFUSED = [
    ({"env": [{"name": "TOKEN", "value": "s3cr3t"}]}, "spec.resources.env[0]", "plain values are not accepted"),
    ({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}, "spec.resources.env[0].valueFrom.fieldRef", "unknown field"),
    ({"env": [{"name": "A", "valueFrom": {}}]}, "spec.resources.env[0].valueFrom", "exactly one"),
    ({"env": [{"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}, "spec.resources.env[0].name", "set by the operator"),
    ({"env": [{"name": "A=B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}, "spec.resources.env[0].name", "not an environment variable name"),
    ({"envFrom": [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]}, "spec.resources.envFrom[0]", "exactly one"),
    ({"extraResources": {"nvidia.com/gpu": 1}}, "spec.resources.extraResources.nvidia.com/gpu", "gpusPerNode"),
    ({"extraResources": {"memory": 1}}, "spec.resources.extraResources.memory", "not an extended resource"),
    ({"extraResources": {"hugepages.kubernetes.io/x": 1}}, "spec.resources.extraResources.hugepages.kubernetes.io/x", "Kubernetes' own"),
    ({"extraResources": {"rdma/hca": 0}}, "spec.resources.extraResources.rdma/hca", "greater than or equal to 1"),
    ({"capabilities": {"add": ["SYS_ADMIN"]}}, "spec.resources.capabilities.add[0]", "IPC_LOCK"),
    ({"sharedMemory": "lots"}, "spec.resources.sharedMemory", "quantity"),
    ({"runAsUser": 0}, "spec.resources.runAsUser", "greater than or equal to 1"),
    ({"imagePullSecrets": ["registry"]}, "spec.resources.imagePullSecrets[0]", ""),
]  # fmt: skip


@pytest.mark.parametrize(("resources", "path", "words"), REFUSED, ids=[r[1] + " " + r[2] for r in REFUSED])
def test_the_webhook_refuses_the_rest_naming_the_field(resources, path, words):
    with pytest.raises(InvalidSpecError) as refused:
        job_with(**resources)
    (error,) = refused.value.errors
    assert error.path == path and words in error.message
    assert "s3cr3t" not in str(refused.value)  # a value the user wrote never lands in a message


def test_kubectl_explain_documents_every_escape_hatch():
    crd = build_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    resources = schema["properties"]["spec"]["properties"]["resources"]["properties"]
    for field in [*HATCHES, "runAsUser"]:
        assert len(resources[field].get("description", "")) > 20, field
    env_item = resources["env"]["items"]["properties"]
    assert set(env_item["valueFrom"]["properties"]) == {"secretKeyRef", "configMapKeyRef"}
    assert resources["capabilities"]["properties"]["add"]["items"]["enum"] == ["IPC_LOCK", "SYS_NICE"]
    assert "restricted" in resources["capabilities"]["properties"]["add"]["description"]
    yaml.safe_dump(crd)  # stays plain YAML
