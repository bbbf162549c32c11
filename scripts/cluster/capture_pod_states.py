#!/usr/bin/env python3
"""Capture pod objects in failure states from a real control plane and node, as test data.

    KUBECONFIG=.cluster/kubeconfig scripts/cluster/capture_pod_states.py --image chef-genius/trainer:dev [CASE...]

Creates, in a throwaway namespace, pods shaped like the operator's trainer pods (completion index
1, attempt 2: the label and annotation the Job controller and the operator set), drives each into
one state, waits for that state to show in the API, and writes `kubectl get pod -o json` to
tests/data/pods/CASE.json (then deletes the namespace). tests/operator/test_pod_states.py
classifies those files; update the provenance column of tests/data/pods/README.md to "captured"
for each file this rewrites.

The pods go to the cluster's one real node (the node kwok does not fake: no `kwok.x-k8s.io/node`
annotation, or the one `--node` names) and tolerate its taints (`make cluster` taints it so that
kwok-shaped scenarios never land there).

Cases (a real node is needed for all but `unschedulable`):
  oom-killed            a container over its memory limit (the image must have python3)
  err-image-pull        an image from 127.0.0.1:1 (refused at once: no packet leaves the machine)
  image-pull-back-off   the same pod, once the kubelet backs off
  unschedulable         requests more CPU than any node has
  evicted-eviction-api  the eviction subresource on a pod that ignores SIGTERM, seen terminating
  preempted             a low-priority pod preempted by a high-priority one, seen terminating

Not capturable on demand (they stay hand-written): kubelet eviction under node pressure, the
taint manager deleting pods of a lost node, graceful node shutdown.
Standard library and kubectl only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "pods"
KUBECTL = os.environ.get("KUBECTL", str(ROOT / ".tools" / "bin" / "kubectl"))
NAMESPACE = "capture-pod-states"
WAIT_S = 300
PLACEMENT: dict = {}  # nodeSelector and tolerations for the real node (real_node_placement)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def trainer_pod(name: str, image: str, command: str, **spec) -> dict:
    """A pod with the labels and annotation of the operator's attempt-2, index-1 trainer pod."""
    container = {
        "name": "trainer",
        "image": image,
        "command": ["sh", "-c", command],
        "resources": spec.pop("resources", {"requests": {"cpu": "10m", "memory": "32Mi"}}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "batch.kubernetes.io/job-completion-index": "1",
                "training.chefgenius.io/job-name": "flan",
                "training.chefgenius.io/attempt": "2",
                "app.kubernetes.io/component": "trainer",
                "app.kubernetes.io/managed-by": "recipe-training-operator",
            },
            "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
        },
        "spec": {"restartPolicy": "Never", "containers": [container], **PLACEMENT, **spec},
    }


def real_node(name: str | None) -> dict:
    """The node the pods must run on: `name`, or the only node kwok does not fake."""
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    real = [n for n in nodes if "kwok.x-k8s.io/node" not in n["metadata"].get("annotations", {})]
    chosen = [n for n in nodes if n["metadata"]["name"] == name] if name else real
    if len(chosen) != 1:
        names = ", ".join(n["metadata"]["name"] for n in real) or "none"
        sys.exit(f"--node: name the node to capture on (nodes not faked by kwok: {names})")
    return chosen[0]


def real_node_placement(node: dict) -> dict:
    """Pin the pods to `node` and tolerate the taints it carries (whatever their keys)."""
    tolerations = [
        {"key": t["key"], "operator": "Exists", "effect": t["effect"]} for t in node["spec"].get("taints", [])
    ]
    return {
        "nodeSelector": {"kubernetes.io/hostname": node["metadata"]["labels"]["kubernetes.io/hostname"]},
        "tolerations": tolerations,
    }


def get(name: str) -> dict:
    return json.loads(kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json"))


def wait_for(name: str, what: str, test) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pod = get(name)
        if test(pod):
            return pod
        time.sleep(1)
    sys.exit(f"{name}: no {what} within {WAIT_S}s; last status:\n{json.dumps(pod.get('status'), indent=2)}")


def container_state(pod: dict) -> dict:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def condition(pod: dict, type_: str) -> dict:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c["type"] == type_), {})


def apply(pod: dict) -> str:
    kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    return pod["metadata"]["name"]


def oom_killed(image: str) -> dict:
    limits = {"cpu": "100m", "memory": "48Mi"}
    name = apply(
        trainer_pod(
            "oom",
            image,
            "python3 -c 'b = bytearray(512 * 1024 * 1024)'",
            resources={"requests": limits, "limits": limits},
        )
    )
    return wait_for(
        name, "OOMKilled", lambda p: container_state(p).get("terminated", {}).get("reason") == "OOMKilled"
    )


def _pull(reason: str) -> dict:
    name = apply(trainer_pod("pull", "127.0.0.1:1/chef-genius/trainer:missing", "true"))
    return wait_for(name, reason, lambda p: container_state(p).get("waiting", {}).get("reason") == reason)


def unschedulable(image: str) -> dict:
    name = apply(trainer_pod("unschedulable", image, "true", resources={"requests": {"cpu": "100000"}}))
    return wait_for(
        name, "Unschedulable", lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable"
    )


def _running_until_killed(name: str, image: str, **spec) -> str:
    apply(
        trainer_pod(
            name,
            image,
            "trap '' TERM; while true; do sleep 1; done",
            terminationGracePeriodSeconds=120,
            **spec,
        )
    )
    wait_for(name, "Running", lambda p: p.get("status", {}).get("phase") == "Running")
    return name


def _disrupted(pod: dict) -> bool:
    return condition(pod, "DisruptionTarget").get("status") == "True" and bool(
        pod["metadata"].get("deletionTimestamp")
    )


def evicted_eviction_api(image: str) -> dict:
    name = _running_until_killed("evicted", image)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": NAMESPACE},
    }
    kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/eviction",
        "-f",
        "-",
        stdin=json.dumps(eviction),
    )
    return wait_for(name, "DisruptionTarget while terminating", _disrupted)


def preempted(image: str) -> dict:
    host = PLACEMENT["nodeSelector"]["kubernetes.io/hostname"]
    node = json.loads(kubectl("get", "node", host, "-o", "json"))
    cpu = _millicores(node["status"]["allocatable"]["cpu"]) * 3 // 4
    for priority in ("low", "high"):
        klass = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": f"{NAMESPACE}-{priority}"},
            "value": 1000 if priority == "high" else -1000,
        }
        kubectl("apply", "-f", "-", stdin=json.dumps(klass))
    requests = {"resources": {"requests": {"cpu": f"{cpu}m", "memory": "32Mi"}}}
    name = _running_until_killed("preempted", image, priorityClassName=f"{NAMESPACE}-low", **requests)
    apply(trainer_pod("preemptor", image, "sleep 600", priorityClassName=f"{NAMESPACE}-high", **requests))
    return wait_for(name, "DisruptionTarget while terminating", _disrupted)


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


CASES = {
    "oom-killed": oom_killed,
    "err-image-pull": lambda image: _pull("ErrImagePull"),
    "image-pull-back-off": lambda image: _pull("ImagePullBackOff"),
    "unschedulable": unschedulable,
    "evicted-eviction-api": evicted_eviction_api,
    "preempted": preempted,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="an image the node has (the trainer image)")
    parser.add_argument(
        "--node", help="the real node to run the pods on (default: the one kwok does not fake)"
    )
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    PLACEMENT.update(real_node_placement(real_node(args.node)))
    for case in args.cases or list(CASES):
        kubectl("create", "namespace", NAMESPACE)
        try:
            pod = CASES[case](args.image)
            (OUT / f"{case}.json").write_text(json.dumps(pod, indent=2) + "\n")
            print(f"{case}: wrote {OUT / f'{case}.json'}")
        finally:
            kubectl(
                "delete", "namespace", NAMESPACE, "--wait=true", "--grace-period=0", "--force", check=False
            )
            kubectl(
                "delete",
                "priorityclass",
                f"{NAMESPACE}-low",
                f"{NAMESPACE}-high",
                "--ignore-not-found",
                check=False,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
