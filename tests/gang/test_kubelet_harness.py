"""The stand-in kubelet itself, without training: what a pod of the operator's Job sees (its env,
hostname, mounts and the rank-0 name), the kubelet's `$(VAR)` rule, and that no process survives.

The pod command here is a shell probe, not the trainer: these check the harness, test_gang.py
checks the gang."""

from __future__ import annotations

import copy
import time

import pytest
from recipe_api import parse_job
from recipe_api.trainer_config import CONFIG_FILE_NAME, CONFIG_MOUNT_PATH, HOSTFILE_NAME
from recipe_operator.builders import build_config_map, build_job, checkpoint_claim_name

from .kubelet_harness import Gang, expand_references, image_env, needs_namespaces

pytestmark = needs_namespaces()

MANIFEST = {
    "apiVersion": "training.chefgenius.io/v1alpha1",
    "kind": "RecipeTrainingJob",
    "metadata": {"name": "probe", "namespace": "ml"},
    "spec": {
        "model": {"name": "google/flan-t5-small"},
        "dataset": {"path": "/data/recipes.csv", "volume": {"claimName": "recipes"}},
        "resources": {"nodes": 2, "gpusPerNode": 0},
    },
}
# `$$$$`: the kubelet turns `$$` into `$`, so the shell sees `$$`, its own PID.
PROBE = (
    'echo "index=$JOB_COMPLETION_INDEX accel=$DS_ACCELERATOR host=$(hostname) pid=$$$$"; '
    'echo "master=$(getent hosts probe-0.probe | cut -f1 -d" ")"; '
    f"cat {CONFIG_MOUNT_PATH}/{HOSTFILE_NAME}; head -1 {CONFIG_MOUNT_PATH}/{CONFIG_FILE_NAME}; "
    'cat /data/recipes.csv; echo "$@" > /checkpoints/args-$JOB_COMPLETION_INDEX; '
    "touch /etc/recipe-trainer/x 2>/dev/null || echo read-only; echo bye > /dev/termination-log"
)


def probe_gang(tmp_path, command: list[str]) -> Gang:
    job = parse_job(copy.deepcopy(MANIFEST))
    manifest = build_job(job, "uid-1", 1, default_image="trainer:dev")
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = command
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "recipes.csv").write_text("title,ingredients\n")
    (tmp_path / "pvc").mkdir()
    return Gang(
        job=manifest,
        config_map=build_config_map(job, "uid-1"),
        claims={checkpoint_claim_name(job): tmp_path / "pvc", "recipes": tmp_path / "data"},
        work=tmp_path / "pods",
        base_env=image_env(tmp_path / "ext", tmp_path / "home"),
    )


def test_each_pod_sees_its_index_hostname_mounts_and_rank0_name(tmp_path):
    gang = probe_gang(tmp_path, ["sh", "-c", PROBE, "probe"])
    with gang:
        assert gang.wait(60) == [0, 0], gang.logs()
    for pod in gang.pods:
        log = pod.log()
        assert f"index={pod.index} accel=cpu host=probe-{pod.index} pid=1" in log  # the container's PID 1
        assert "master=127.0.0.1" in log
        assert "probe-0.probe slots=1\nprobe-1.probe slots=1" in log  # the ConfigMap's hostfile
        assert "name: probe" in log and "title,ingredients" in log and "read-only" in log
        assert pod.termination_message() == "bye\n"
        # $(JOB_COMPLETION_INDEX) in the args was expanded by the "kubelet", nothing else changed.
        args = (tmp_path / "pvc" / f"args-{pod.index}").read_text().split()
        assert f"--node_rank={pod.index}" in args and "--master_addr=probe-0.probe" in args
        assert pod.to_dict()["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_killed_pod_reports_137_and_no_process_survives_close(tmp_path):
    gang = probe_gang(tmp_path, ["sh", "-c", "sleep 300 & sleep 300 & wait", "probe"])
    gang.start()
    try:
        time.sleep(0.5)
        gang.kill_pod(1)
        deadline = time.monotonic() + 10
        while gang.pods[1].exit_code is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gang.pods[1].exit_code == 137
        assert gang.pods[0].exit_code is None
        assert gang.job_dict()["status"]["conditions"][0]["type"] == "Failed"
    finally:
        gang.close()
    assert gang.survivors() == []


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("--node_rank=$(JOB_COMPLETION_INDEX)", "--node_rank=3"),
        ("$$(JOB_COMPLETION_INDEX)", "$(JOB_COMPLETION_INDEX)"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("plain $HOME", "plain $HOME"),
    ],
)
def test_kubelet_reference_expansion(text, expanded):
    assert expand_references(text, {"JOB_COMPLETION_INDEX": "3"}) == expanded
