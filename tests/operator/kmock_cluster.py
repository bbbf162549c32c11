"""A kmock Kubernetes emulator on 127.0.0.1 in its own thread, plus a small sync client.

The operator runs under kopf.testing.KopfRunner in another thread; the test drives the
"cluster" through real HTTP calls, as kubectl and a kubelet would (kmock has no scheduler,
kubelet, Job controller or garbage collector, so tests set pod and Job status themselves and
call `Cluster.collect_garbage` where an owner is deleted).
kmock 0.8 assigns no uid/resourceVersion: created test objects get a uid here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml
from polling import wait_for  # noqa: F401  (re-exported for the operator tests)
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, KIND, PLURAL

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "recipetrainingjobs.yaml"
RTJ_API = f"/apis/{API_GROUP}/{API_VERSION}"
COLLECTIONS = {
    "RecipeTrainingJob": f"{RTJ_API}/namespaces/{{ns}}/{PLURAL}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Event": "/api/v1/namespaces/{ns}/events",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
}
T = TypeVar("T")


class Cluster:
    """Sync HTTP client of the emulator (what kubectl would do in a real cluster)."""

    def __init__(self, url: str, emulator: kmock.KubernetesEmulator):
        self.url = url.rstrip("/")
        self.emulator = emulator

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(text) if text else {}

    def path(self, kind: str, ns: str, name: str | None = None) -> str:
        path = COLLECTIONS[kind].format(ns=ns)
        return f"{path}/{name}" if name else path

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._call("POST", self.path(obj["kind"], meta["namespace"]), obj)
        return self.get(obj["kind"], meta["namespace"], meta["name"])

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return self._call("GET", self.path(kind, ns, name))

    def list(self, kind: str, ns: str) -> list[dict[str, Any]]:
        return (self._call("GET", self.path(kind, ns)) or {}).get("items", [])

    def patch(self, kind: str, ns: str, name: str, patch: dict[str, Any], status: bool = False) -> Any:
        path = self.path(kind, ns, name) + ("/status" if status else "")
        return self._call("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, kind: str, ns: str, name: str) -> Any:
        return self._call("DELETE", self.path(kind, ns, name))

    def collect_garbage(self, ns: str) -> list[str]:
        """Play the garbage collector once: delete every object all of whose owners are gone (no
        object of that kind and name, or one with another uid: a namesake created since). A real
        one runs all the time, so a test that deletes an owner calls this while it waits: an
        operator's reconcile that read the owner just before its deletion may still create a
        child for it afterwards. Returns what it deleted, as "Kind/name"."""
        deleted = []
        for kind in ("Job", "ConfigMap", "Service", "PersistentVolumeClaim", "Pod"):
            for obj in self.list(kind, ns):
                refs = (obj.get("metadata") or {}).get("ownerReferences") or []
                if refs and not any(self._owner_exists(ns, ref) for ref in refs):
                    self.delete(kind, ns, obj["metadata"]["name"])
                    deleted.append(f"{kind}/{obj['metadata']['name']}")
        return deleted

    def _owner_exists(self, ns: str, ref: dict[str, Any]) -> bool:
        if ref.get("kind") not in COLLECTIONS:
            return True  # an owner this emulator does not serve: never collect on its account
        owner = self.get(ref["kind"], ns, ref["name"])
        return owner is not None and (owner.get("metadata") or {}).get("uid") == ref.get("uid")

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.list("Event", ns) if (e.get("involvedObject") or {}).get("name") == name]


class LeanEmulator(kmock.KubernetesEmulator):
    """kmock keeps every request it ever served for assertions, and matches each new request by
    scanning that whole log (O(requests served), ~50 ms per request after a few thousand).
    Nothing here asserts on the request log, so it keeps only the requests in flight; the
    emulated API (objects, watches, errors) is unchanged."""

    async def _handle(self, request):  # type: ignore[no-untyped-def]
        try:
            return await super()._handle(request)
        finally:
            with contextlib.suppress(ValueError):
                self._requests.remove(request)


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    emulator.resources.load_bundled()
    crd = yaml.safe_load(CRD_PATH.read_text())
    names = crd["spec"]["names"]
    emulator.resources[f"{API_GROUP}/{API_VERSION}/{PLURAL}"] = kmock.ResourceInfo(
        kind=names["kind"],
        singular=names["singular"],
        shortnames=set(names.get("shortNames", [])),
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    )
    assert names["kind"] == KIND


@contextlib.contextmanager
def running_emulator() -> Iterator[Cluster]:
    """Start kmock in a thread with its own event loop; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        async with LeanEmulator() as emulator, kmock.Server(emulator) as server:
            declare_resources(emulator)
            state["cluster"] = Cluster(str(server.url), emulator)
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield state["cluster"]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "kmock", "user": {"token": "test"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                "current-context": "kmock",
            }
        )
    )
    return path
