"""What `make cluster` creates, checked offline: the API server would refuse a malformed PV or
Node only after a half-hour cold build, and a drifted replace list would build a binary whose
components disagree on their own API types."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml
from local_cluster import COMPLETE_STAGE, FAIL_STAGE

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster"


def test_storage_is_one_default_immediate_class_and_the_asked_pvs_of_each_mode(tmp_path):
    out = subprocess.run(
        [str(CLUSTER / "storage.sh"), "3", "2"],
        env={"CLUSTER_STATE": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = list(yaml.safe_load_all(out))
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    (storage_class,) = [o for o in objects if o["kind"] == "StorageClass"]
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class["volumeBindingMode"] == "Immediate"
    modes = [o["spec"]["accessModes"] for o in objects if o["kind"] == "PersistentVolume"]
    assert modes.count(["ReadWriteOnce"]) == 3 and modes.count(["ReadWriteMany"]) == 2
    for pv in (o for o in objects if o["kind"] == "PersistentVolume"):
        assert pv["spec"]["storageClassName"] == "standard"
        assert pv["spec"]["hostPath"]["path"].startswith(str(tmp_path))


def test_the_fake_nodes_are_shaped_like_8_gpu_servers_and_managed_by_kwok():
    text = (CLUSTER / "manifests" / "gpu-node.yaml.tmpl").read_text().replace("${NAME}", "gpu-node-7")
    node = yaml.safe_load(text)
    kubernetes_validate.validate(node, "1.35.0", strict=True)
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"  # up.sh's kwok selector
    capacity = node["status"]["capacity"]
    assert capacity["nvidia.com/gpu"] == "8" and int(capacity["cpu"]) >= 64 and capacity["memory"] == "512Gi"
    assert node["status"]["allocatable"] == capacity


def _selector_keys(stage: dict) -> set[str]:
    return {expr["key"] for expr in stage["spec"]["selector"]["matchExpressions"]}


def test_job_pods_complete_only_on_request_and_the_chaos_stage_reads_exit_code_and_reason():
    stages = {
        s["metadata"]["name"]: s for s in yaml.safe_load_all((CLUSTER / "kwok" / "stages.yaml").read_text())
    }
    assert f'.metadata.labels["{COMPLETE_STAGE}"]' in _selector_keys(stages["pod-complete"])
    assert f'.metadata.labels["{FAIL_STAGE}"]' in _selector_keys(stages["pod-container-running-failed"])
    template = stages["pod-container-running-failed"]["spec"]["next"]["statusTemplate"]
    for annotation in ("exit-code", "reason", "message"):
        assert f'"{FAIL_STAGE}/{annotation}"' in template  # the keys tests/local_cluster.fail_pod sets
    assert {"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-delete"} <= set(stages)


def test_every_staging_module_is_replaced_by_the_release_matching_kubernetes():
    gomod = (CLUSTER / "chef-k8s" / "go.mod").read_text()
    (kubernetes,) = re.findall(r"^\s*k8s\.io/kubernetes (v1\.(\d+)\.(\d+))$", gomod, re.M)
    staging = f"v0.{kubernetes[1]}.{kubernetes[2]}"
    replaces = re.findall(r"^\s*(k8s\.io/[\w.-]+) => (k8s\.io/[\w.-]+) (\S+)$", gomod, re.M)
    assert len(replaces) >= 30  # k8s.io/kubernetes v1.35 has 31 staging modules
    assert all(old == new and version == staging for old, new, version in replaces), replaces
