"""What the issue-10 scenarios share: a client of the cluster as kubectl would use it, GPU-shaped
manifests, and readings of the operator's own /metrics. conftest.py's fixtures start things; this
module only reads and writes through the API."""

from __future__ import annotations

import copy
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from polling import wait_for as poll
from recipe_api.contract import LABEL_ATTEMPT, LABEL_JOB_NAME
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

T = TypeVar("T")
IMAGE = "registry.invalid/chef-genius/trainer:e2e"  # kwok runs no containers: never pulled
OPERATOR_NAMESPACE = "recipe-training"  # scripts/cluster/lib.sh
RELEASE = "recipe-training-operator"  # scripts/cluster/lib.sh; also the chart's full name


def wait_for(check: Callable[[], T], timeout: float = 120.0, what: str = "condition") -> T:
    """A real cluster moves in seconds: poll each second, wait minutes at most."""
    return poll(check, timeout=timeout, what=what, interval=1.0)


# How long a "nothing happened" check keeps looking once its positive signal came (see `stays`).
QUIET_SECONDS = 5.0


def stays(observe: Callable[[], T], until: Callable[[], object], what: str, timeout: float = 120.0) -> T:
    """A "nothing happened" check that can fail: `observe()` must keep its first value while we
    wait for `until()`, a positive signal that whatever could have changed it had its chance (the
    operator reconciled, a controller wrote its own status), and then for QUIET_SECONDS more.
    A bare sleep would pass on a machine too slow for anything to have happened yet."""
    first = observe()

    def unchanged_until() -> object:
        now = observe()
        assert now == first, f"{what}: changed from {first!r} to {now!r}"
        return until()

    wait_for(unchanged_until, timeout=timeout, what=f"the signal that {what} was exercised")
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        unchanged_until()
        time.sleep(0.5)
    return first


# kwok removes a deleted pod at a random moment before its grace period ends, as if the container
# took that long to stop: the product's 120 s default would add minutes to every gang restart here.
E2E_GRACE_SECONDS = 2


def gpu_job(name: str, ns: str, nodes: int = 2, gpus: int = 8, **spec: Any) -> dict:
    """A job shaped like the product's: whole 8-GPU servers, one pod per node."""
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"name": "google/flan-t5-large"},
            "dataset": {"path": "/data/recipes.csv"},
            "resources": {
                "image": IMAGE,
                "nodes": nodes,
                "gpusPerNode": gpus,
                "cpu": "32",
                "memory": "128Gi",
            },
            "checkpoint": {"volume": {"size": "1Gi"}},
            "runPolicy": {"terminationGracePeriodSeconds": E2E_GRACE_SECONDS},
        },
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body["spec"].get(key), dict):
            body["spec"][key] = {**body["spec"][key], **copy.deepcopy(value)}
        else:
            body["spec"][key] = copy.deepcopy(value)
    return body


class Kube:
    """The cluster through the official client, with None for 404 (tests read absent objects)."""

    def __init__(self, api: Any, ns: str):
        import kubernetes

        self.ns = ns
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self.coordination = kubernetes.client.CoordinationV1Api(api)
        self.scheduling = kubernetes.client.SchedulingV1Api(api)
        self.ApiException = kubernetes.client.exceptions.ApiException

    def _or_none(self, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except self.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, self.ns, PLURAL, body)

    def rtj(self, name: str) -> dict | None:
        return self._or_none(
            lambda: self.custom.get_namespaced_custom_object(API_GROUP, API_VERSION, self.ns, PLURAL, name)
        )

    def status(self, name: str) -> dict:
        return (self.rtj(name) or {}).get("status") or {}

    def phase_is(self, name: str, *phases: str) -> Callable[[], dict | None]:
        return lambda: (st := self.status(name)).get("phase") in phases and st or None

    def patch_spec(self, name: str, spec: dict) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, self.ns, PLURAL, name, {"spec": spec}
        )

    def delete_rtj(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, self.ns, PLURAL, name)

    def job(self, name: str) -> Any:
        return self._or_none(lambda: self.batch.read_namespaced_job(name, self.ns))

    def job_of_attempt(self, name: str, attempt: int) -> Callable[[], Any]:
        def check() -> Any:
            job = self.job(name)
            ok = job is not None and job.metadata.labels.get(LABEL_ATTEMPT) == str(attempt)
            return job if ok and not job.metadata.deletion_timestamp else None

        return check

    def pods(self, name: str, attempt: int | None = None) -> list[Any]:
        selector = f"{LABEL_JOB_NAME}={name}" + (f",{LABEL_ATTEMPT}={attempt}" if attempt else "")
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items

    def running_pods(self, name: str, attempt: int, count: int) -> Callable[[], list[Any] | None]:
        def check() -> list[Any] | None:
            pods = [
                p
                for p in self.pods(name, attempt)
                if p.status.phase == "Running" and not p.metadata.deletion_timestamp
            ]
            return pods if len(pods) >= count else None

        return check

    def children(self, name: str) -> dict[str, list[str]]:
        """Every object labelled as this job's child, by kind (duplicates would show here)."""
        selector = f"{LABEL_JOB_NAME}={name}"
        return {
            "Job": [
                j.metadata.name
                for j in self.batch.list_namespaced_job(self.ns, label_selector=selector).items
            ],
            "ConfigMap": [
                c.metadata.name
                for c in self.core.list_namespaced_config_map(self.ns, label_selector=selector).items
            ],
            "Service": [
                s.metadata.name
                for s in self.core.list_namespaced_service(self.ns, label_selector=selector).items
            ],
            "PersistentVolumeClaim": [
                c.metadata.name
                for c in self.core.list_namespaced_persistent_volume_claim(
                    self.ns, label_selector=selector
                ).items
            ],
        }

    def identities(self, name: str) -> dict[str, str]:
        """uid of every child and pod of the job, by kind/name: a child deleted and created again
        (a duplicate launch with the same fixed name) shows as a new uid."""
        found = {}
        for kind, names in self.children(name).items():
            for child in names:
                read = {
                    "Job": lambda n: self.batch.read_namespaced_job(n, self.ns),
                    "ConfigMap": lambda n: self.core.read_namespaced_config_map(n, self.ns),
                    "Service": lambda n: self.core.read_namespaced_service(n, self.ns),
                    "PersistentVolumeClaim": lambda n: self.core.read_namespaced_persistent_volume_claim(
                        n, self.ns
                    ),
                }[kind]
                found[f"{kind}/{child}"] = read(child).metadata.uid
        found.update({f"Pod/{p.metadata.name}": p.metadata.uid for p in self.pods(name)})
        return found

    def event_reasons(self, name: str) -> list[str]:
        events = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [e.reason for e in events]

    def lease_holder(self) -> str:
        lease = self._or_none(lambda: self.coordination.read_namespaced_lease(RELEASE, OPERATOR_NAMESPACE))
        return (lease.spec.holder_identity or "") if lease is not None else ""


def reconciles(port: int, namespace: str) -> float:
    """How many reconciles the operator serving /metrics on `port` ran for `namespace`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = f'recipe_operator_reconcile_duration_seconds_count{{namespace="{namespace}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))
