"""Builders: every child object is valid for Kubernetes 1.35 (strict schemas) and carries
what the trainer and the cluster rely on."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from recipe_api.contract import LABEL_ATTEMPT, LABEL_JOB_NAME, METRICS_PORT_NAME
from recipe_api.trainer_config import (
    CHECKPOINT_MOUNT_PATH,
    CONFIG_FILE_NAME,
    CONFIG_MOUNT_PATH,
    HOSTFILE_NAME,
    TERMINATION_LOG_PATH,
    TrainerConfig,
)
from recipe_api.validation import parse_job
from recipe_operator import builders

UID = "0b4c6c2e-1111-2222-3333-444455556666"
BASE = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "flan", "namespace": "ml"},
    "spec": {"model": {"name": "google/flan-t5-small"}, "dataset": {"path": "/data/r.csv"}},
}


def job_of(**spec):
    manifest = copy.deepcopy(BASE)
    labels = spec.pop("labels", None)
    if labels:
        manifest["metadata"]["labels"] = labels
    manifest["spec"].update(spec)
    return parse_job(manifest)


VARIANTS = {
    "defaults": {},
    "multi-node gpu": {"resources": {"nodes": 4, "gpusPerNode": 8}},
    "cpu only": {"resources": {"gpusPerNode": 0, "cpu": "2", "memory": "4Gi"}},
    "own claims and scheduling": {
        "dataset": {"path": "/mnt/d/r.csv", "volume": {"claimName": "recipes", "mountPath": "/mnt/d"}},
        "checkpoint": {"volume": {"claimName": "shared-ckpt"}},
        "resources": {
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "training",
        },
        "runPolicy": {"activeDeadlineSeconds": 3600},
    },
    "notifications and queue": {
        "labels": {"kueue.x-k8s.io/queue-name": "team-a"},
        "notifications": {"webhookSecretRef": {"name": "hooks", "key": "discord"}},
        "checkpoint": {"volume": {"storageClassName": "fast", "size": "10Gi"}},
    },
}


def all_children(job, attempt=1, deadline=None):
    children = [
        builders.build_config_map(job, UID),
        builders.build_service(job, UID),
        builders.build_job(job, UID, attempt, "trainer:1", deadline),
    ]
    pvc = builders.build_checkpoint_pvc(job, UID)
    return children + ([pvc] if pvc else [])


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_every_child_validates_strictly_against_kubernetes_1_35(variant):
    job = job_of(**copy.deepcopy(VARIANTS[variant]))
    for obj in all_children(job, deadline=job.spec.run_policy.active_deadline_seconds):
        kubernetes_validate.validate(obj, "1.35.0", strict=True)


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_every_child_is_owned_by_the_job_and_labelled(variant):
    """Every child but the checkpoint claim, which outlives the job (a re-created job resumes from it)."""
    job = job_of(**copy.deepcopy(VARIANTS[variant]))
    for obj in all_children(job, attempt=3):
        assert obj["metadata"]["labels"][LABEL_JOB_NAME] == "flan"
        if obj["kind"] == "PersistentVolumeClaim":
            assert "ownerReferences" not in obj["metadata"]
            continue
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "training.chefgenius.io/v1alpha1",
            "kind": "RecipeTrainingJob",
            "name": "flan",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["labels"][LABEL_JOB_NAME] == "flan"
        assert obj["metadata"]["namespace"] == "ml"
    job_obj = builders.build_job(job, UID, 3, "trainer:1")
    assert job_obj["metadata"]["labels"][LABEL_ATTEMPT] == "3"
    assert job_obj["spec"]["template"]["metadata"]["labels"][LABEL_ATTEMPT] == "3"


def test_the_configmap_holds_the_resolved_config_with_state_on_the_checkpoint_volume():
    job = job_of(training={"epochs": 2}, resources={"nodes": 2, "gpusPerNode": 4})
    cm = builders.build_config_map(job, UID)
    config = TrainerConfig.from_yaml(cm["data"][CONFIG_FILE_NAME])
    assert config.spec == job.spec and config.spec.training.epochs == 2
    assert config.runtime.checkpoint_dir == CHECKPOINT_MOUNT_PATH
    assert config.runtime.run_dir.startswith(CHECKPOINT_MOUNT_PATH + "/")
    assert config.name == "flan" and config.namespace == "ml"
    assert cm["data"][HOSTFILE_NAME] == "flan-0.flan slots=4\nflan-1.flan slots=4\n"


@pytest.mark.parametrize(
    ("resources", "hostfile"),
    [
        ({"nodes": 1}, None),
        ({"nodes": 2, "gpusPerNode": 0}, "flan-0.flan slots=1\nflan-1.flan slots=1\n"),
        ({"nodes": 3, "gpusPerNode": 2}, "flan-0.flan slots=2\nflan-1.flan slots=2\nflan-2.flan slots=2\n"),
    ],
)
def test_hostfile_lists_every_pod_by_its_stable_hostname(resources, hostfile):
    cm = builders.build_config_map(job_of(resources=resources), UID)
    assert cm["data"].get(HOSTFILE_NAME) == hostfile


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"nodes": 1, "gpusPerNode": 2},
            [
                "--master_port=29500",
                "--num_gpus",
                "2",
                "--no_local_rank",
                "--module",
                "recipe_trainer.cli",
                "train",
            ],
        ),
        (
            {"nodes": 2, "gpusPerNode": 8},
            [
                "--hostfile",
                f"{CONFIG_MOUNT_PATH}/{HOSTFILE_NAME}",
                "--no_ssh",
                "--node_rank=$(JOB_COMPLETION_INDEX)",
                "--master_addr=flan-0.flan",
                "--master_port=29500",
                "--num_gpus",
                "8",
                "--no_local_rank",
                "--module",
                "recipe_trainer.cli",
                "train",
            ],
        ),
        ({"nodes": 1, "gpusPerNode": 0}, ["--master_port=29500", "--num_gpus", "1"]),
    ],
)
def test_launcher_arguments(resources, expected):
    args = builders.build_launch(job_of(resources=resources)).args
    assert args[: len(expected)] == expected
    assert args[-2:] == ["--config", f"{CONFIG_MOUNT_PATH}/{CONFIG_FILE_NAME}"]


def test_the_indexed_job_runs_one_pod_per_node_and_leaves_restarts_to_the_operator():
    job = job_of(resources={"nodes": 4, "gpusPerNode": 8, "cpu": "32", "memory": "256Gi"})
    spec = builders.build_job(job, UID, 1, "trainer:1")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimit"] == 0 and spec["suspend"] is False
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == builders.service_name(job) and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"}
    # Guaranteed QoS (CPU and memory requested as limited) and the node's disk accounted for
    assert container["resources"]["requests"] == {
        **container["resources"]["limits"],
        "ephemeral-storage": "1Gi",
    }
    assert container["terminationMessagePath"] == TERMINATION_LOG_PATH
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": METRICS_PORT_NAME, "containerPort": 9400, "protocol": "TCP"} in container["ports"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {
        CONFIG_MOUNT_PATH: "config",
        CHECKPOINT_MOUNT_PATH: "checkpoints",
        "/dev/shm": "dshm",
        "/var/cache/recipe-trainer": "cache",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}  # never unbounded
    assert volumes["cache"]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == "flan-checkpoints"
    env = {e["name"] for e in container["env"]}
    assert "DS_ACCELERATOR" not in env and "JOB_COMPLETION_INDEX" in env


@pytest.mark.parametrize(
    ("resources", "threads"),
    [
        ({"gpusPerNode": 0, "cpu": "600m"}, "1"),
        ({"gpusPerNode": 0, "cpu": "2"}, "2"),
        ({"gpusPerNode": 0, "cpu": "3500m"}, "3"),
        ({"gpusPerNode": 8, "cpu": "96"}, "12"),
    ],
)
def test_each_rank_gets_its_share_of_the_pods_cores_not_the_whole_nodes(resources, threads):
    """Without OMP_NUM_THREADS each rank sizes its thread pools to every core of the node."""
    container = builders.build_job(job_of(resources=resources), UID, 1, "t")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": "OMP_NUM_THREADS", "value": threads} in container["env"]


def test_the_checkpoint_volume_is_chowned_only_when_its_root_is_not_ours_and_caches_get_a_volume():
    pod = builders.build_job(job_of(), UID, 1, "t")["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HF_HOME"].startswith("/var/cache/recipe-trainer/")


def test_cpu_jobs_select_deepspeeds_cpu_accelerator_and_ask_for_no_gpus():
    container = builders.build_job(job_of(resources={"gpusPerNode": 0}), UID, 1, "t")["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert {"name": "DS_ACCELERATOR", "value": "cpu"} in container["env"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_the_pods_grace_period_is_the_jobs_time_to_write_its_stop_checkpoint():
    def grace(**spec) -> int:
        return builders.build_job(job_of(**spec), UID, 1, "t")["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]

    assert grace() == 120  # not Kubernetes' 30 s: a CPU step plus a checkpoint save must fit
    assert grace(runPolicy={"terminationGracePeriodSeconds": 600}) == 600
    with pytest.raises(ValueError, match="terminationGracePeriodSeconds"):
        job_of(runPolicy={"terminationGracePeriodSeconds": 0})


def test_user_claims_scheduling_labels_and_deadline_reach_the_pods():
    job = job_of(**copy.deepcopy(VARIANTS["own claims and scheduling"]), labels={"team": "kitchen"})
    manifest = builders.build_job(job, UID, 2, "default:1", active_deadline_seconds=1200)
    pod = manifest["spec"]["template"]["spec"]
    assert manifest["spec"]["activeDeadlineSeconds"] == 1200
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["priorityClassName"] == "training"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == "shared-ckpt"
    assert volumes["dataset"]["persistentVolumeClaim"]["claimName"] == "recipes"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["dataset"] == {"name": "dataset", "mountPath": "/mnt/d", "readOnly": True}
    assert manifest["metadata"]["labels"]["team"] == "kitchen"
    assert manifest["spec"]["template"]["metadata"]["labels"]["team"] == "kitchen"
    assert builders.build_checkpoint_pvc(job, UID) is None  # the user's claim outlives the job


def test_a_queue_label_is_carried_and_the_job_starts_suspended_for_kueue():
    job = job_of(labels={"kueue.x-k8s.io/queue-name": "team-a", LABEL_JOB_NAME: "spoofed"})
    manifest = builders.build_job(job, UID, 1, "t")
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert manifest["metadata"]["labels"][LABEL_JOB_NAME] == "flan"  # the operator's labels win
    assert manifest["spec"]["suspend"] is True


def test_secrets_reach_the_trainer_by_reference_only():
    job = job_of(
        notifications={
            "webhookSecretRef": {"name": "hooks", "key": "discord"},
            "wandb": {"project": "p", "apiKeySecretRef": {"name": "wandb", "key": "key"}},
        }
    )
    env = builders.build_job(job, UID, 1, "t")["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        "RECIPE_TRAINER_WEBHOOK_URL": {"name": "hooks", "key": "discord"},
        "WANDB_API_KEY": {"name": "wandb", "key": "key"},
    }


@pytest.mark.parametrize(
    ("volume", "nodes", "expected"),
    [
        ({}, 1, {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}),
        (
            {"size": "5Gi", "storageClassName": "nfs"},
            2,
            {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "5Gi"}},
                "storageClassName": "nfs",
            },
        ),
    ],
)
def test_checkpoint_pvc(volume, nodes, expected):
    pvc = builders.build_checkpoint_pvc(
        job_of(checkpoint={"volume": volume}, resources={"nodes": nodes}), UID
    )
    assert pvc["spec"] == expected and pvc["metadata"]["name"] == "flan-checkpoints"


def test_headless_service_publishes_not_ready_pods_for_rendezvous():
    svc = builders.build_service(job_of(metrics={"port": 9500}), UID)
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {LABEL_JOB_NAME: "flan"}
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {
        "rendezvous": 29500,
        METRICS_PORT_NAME: 9500,
    }


def test_children_are_plain_yaml_serialisable():
    for obj in all_children(job_of()):
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj
