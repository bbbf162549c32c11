"""The one module that talks to the Kubernetes API.

Everything else in the operator is pure. Calls go through the official client's ApiClient
(it handles in-cluster tokens, kubeconfigs and exec plugins) on worker threads, with plain
dict bodies, so the rest of the code only ever sees dicts as the API returns them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from recipe_api.status import RecipeTrainingJobStatus, cap_message
from recipe_api.v1alpha1 import API_GROUP, API_VERSION, KIND, PLURAL

RTJ_API_VERSION = f"{API_GROUP}/{API_VERSION}"
WEBHOOK_API_VERSION = "admissionregistration.k8s.io/v1"
VALIDATING_WEBHOOKS = f"/apis/{WEBHOOK_API_VERSION}/validatingwebhookconfigurations"
_COLLECTIONS = {
    ("v1", "ConfigMap"): "/api/v1/namespaces/{namespace}/configmaps",
    ("v1", "Service"): "/api/v1/namespaces/{namespace}/services",
    ("v1", "PersistentVolumeClaim"): "/api/v1/namespaces/{namespace}/persistentvolumeclaims",
    ("v1", "Pod"): "/api/v1/namespaces/{namespace}/pods",
    ("v1", "Event"): "/api/v1/namespaces/{namespace}/events",
    ("batch/v1", "Job"): "/apis/batch/v1/namespaces/{namespace}/jobs",
    ("coordination.k8s.io/v1", "Lease"): "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
    ("v1", "Secret"): "/api/v1/namespaces/{namespace}/secrets",
    # cluster-scoped: the namespace argument is ignored
    (WEBHOOK_API_VERSION, "ValidatingWebhookConfiguration"): VALIDATING_WEBHOOKS,
    (RTJ_API_VERSION, KIND): f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{namespace}}/{PLURAL}",
}
REQUEST_TIMEOUT_SECONDS = 30
API_CONNECTIONS = 32  # concurrent API calls (pooled connections and the threads that make them)
RTJ_ALL_NAMESPACES = f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}"
EVENT_SOURCE = "recipe-training-operator"
logger = logging.getLogger(__name__)


class ApiError(ApiException):
    """A call the API server refused (status, reason, its Status body). The one error type the
    rest of the operator catches, so that only this module knows the Kubernetes client."""


def api_message(exc: ApiException) -> str:
    """The API server's own sentence from a failed call (its Status body), else the HTTP reason."""
    try:
        body = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or f"HTTP {exc.status}")


LIST_PAGE_SIZE = 250
LIST_MAX_PAGES = 8


def _without_nulls(value: Any) -> Any:
    """What the API server stores: it prunes nulls of non-nullable fields, inside lists too."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def merge_patch(before: dict, after: dict) -> dict:
    """The smallest JSON merge patch (RFC 7386) that turns `before` into `after`, where a None in
    `after` means "absent". Objects are diffed key by key (a changed progress.loss sends only
    that key), lists are replaced whole (merge patch has no list merge), a null is sent only
    to remove a key that is stored, and an empty result means nothing to write."""
    patch: dict = {}
    for key, value in after.items():
        old = before.get(key)
        if value is None:
            if old is not None:
                patch[key] = None
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
            continue
        value = _without_nulls(value)
        if value != old:
            patch[key] = value
    return patch


def status_patch(before: dict, new: RecipeTrainingJobStatus) -> dict:
    """The minimal merge patch from the stored status to `new` ({} when they agree)."""
    return merge_patch(before, new.to_manifest())


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when `obj` has an ownerReference to the object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


class Kube:
    """Namespaced CRUD on the kinds the operator handles; errors other than 404/409 propagate
    (kopf retries the handler)."""

    def __init__(self, api_client: kubernetes.client.ApiClient):
        self.api = api_client
        # Its own threads, as many as pooled connections: asyncio's default executor has only
        # cores + 4 threads (6 on 2 cores), which queued a burst of creates behind each other.
        self.executor = ThreadPoolExecutor(max_workers=API_CONNECTIONS, thread_name_prefix="kube")

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else $KUBECONFIG / ~/.kube/config."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
            )
        configuration.connection_pool_maxsize = API_CONNECTIONS
        return cls(kubernetes.client.ApiClient(configuration))

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        method, url, headers, payload, _ = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=timeout
        )
        data = response.read()
        if response.status >= 400:
            raise ApiError(status=response.status, reason=response.reason, body=data)
        return json.loads(data) if data else {}

    async def _request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        call = functools.partial(self._call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    @staticmethod
    def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
        path = _COLLECTIONS[(api_version, kind)].format(namespace=namespace)
        return f"{path}/{name}" if name else path

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> dict[str, Any] | None:
        try:
            return await self._request("GET", self._path(api_version, kind, namespace, name), timeout=timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The objects with these labels, read in pages of LIST_PAGE_SIZE and at most LIST_MAX_PAGES
        of them: a job has at most MAX_NODES pods per attempt, so more means someone else labelled
        theirs like ours, and one reconcile must not read without end (issue 23, finding 7)."""
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(LIST_MAX_PAGES):
            query = [("labelSelector", selector), ("limit", str(LIST_PAGE_SIZE))]
            result = await self._request(
                "GET",
                self._path(api_version, kind, namespace),
                query=query + ([("continue", token)] if token else []),
            )
            items += result.get("items") or []
            token = (result.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        else:
            logger.warning(
                "listing %s %s in %s: stopped after %d items", kind, selector, namespace, len(items)
            )
        # Filter here as well: the selector is an optimisation some API emulators ignore.
        return [
            item
            for item in items
            if all(((item.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    async def list_all_jobs(self, namespaces: list[str]) -> list[dict[str, Any]]:
        """Every RecipeTrainingJob in the watched namespaces (all of them when the list is empty)."""
        if not namespaces:
            return (await self._request("GET", RTJ_ALL_NAMESPACES)).get("items") or []
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            result = await self._request("GET", self._path(RTJ_API_VERSION, KIND, namespace))
            items += result.get("items") or []
        return items

    async def list_events(self, namespace: str, uid: str, reason: str) -> list[dict[str, Any]]:
        """Events about the object with this uid and reason (e.g. a Job's FailedCreate)."""
        selector = f"involvedObject.uid={uid},reason={reason}"
        result = await self._request(
            "GET", self._path("v1", "Event", namespace), query=[("fieldSelector", selector)]
        )
        return [
            e
            for e in result.get("items") or []
            if (e.get("involvedObject") or {}).get("uid") == uid and e.get("reason") == reason
        ]

    async def create_if_absent(self, obj: dict[str, Any]) -> bool:
        """Create; an existing object of that name is left alone. True when created now."""
        meta = obj["metadata"]
        try:
            await self._request(
                "POST", self._path(obj["apiVersion"], obj["kind"], meta["namespace"]), body=obj
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        propagation: str = "Background",
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> bool:
        """Delete; False when it was already gone (or, with `uid`, replaced by another object of
        that name: the uid precondition makes sure only the object the caller saw is deleted)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        try:
            await self._request("DELETE", self._path(api_version, kind, namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 404 or (uid and exc.status == 409):
                return False
            raise
        return True

    async def create(self, obj: dict[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS) -> dict[str, Any]:
        """POST; every error (409 included) propagates."""
        meta = obj["metadata"]
        return await self._request(
            "POST", self._path(obj["apiVersion"], obj["kind"], meta["namespace"]), body=obj, timeout=timeout
        )

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        """JSON merge patch (a null removes a key; a metadata.resourceVersion in it is a
        precondition: 409 when the object changed since it was read)."""
        await self._request(
            "PATCH",
            self._path(api_version, kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            timeout=timeout,
        )

    async def json_patch(
        self, api_version: str, kind: str, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None:
        """RFC 6902 JSON patch: changes one field inside a list (a webhook's caBundle) where a merge
        patch would replace the whole list; a `test` operation in it is a precondition (422)."""
        await self._request(
            "PATCH",
            self._path(api_version, kind, namespace, name),
            body=operations,
            content_type="application/json-patch+json",
        )

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = self._path(RTJ_API_VERSION, KIND, namespace, name) + "/status"
        await self._request(
            "PATCH", path, body={"status": status}, content_type="application/merge-patch+json"
        )

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.get(RTJ_API_VERSION, KIND, namespace, name)

    async def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the RecipeTrainingJob, named <job>.<unique hex> as client-go names them
        (no generateName, so every event is its own object even on API emulators)."""
        meta = body.get("metadata") or {}
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": RTJ_API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": cap_message(message),
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": EVENT_SOURCE,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._request("POST", self._path("v1", "Event", meta["namespace"]), body=event)
        except ApiException as exc:  # an event is never worth failing a reconcile for
            logger.warning("could not post event %s on %s: %s", reason, meta["name"], exc.status)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.api.close()
