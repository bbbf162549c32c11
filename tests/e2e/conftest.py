"""End-to-end scenarios against a real cluster (`make e2e` with KUBECONFIG set).

Skipped, never faked, without KUBECONFIG. The CRD is applied from crds/ if missing; the
operator runs in-process (kopf.testing.KopfRunner) watching only a fresh namespace, unless
RECIPE_E2E_INSTALLED_OPERATOR=1 says an installed operator (Helm chart) already watches it.
RECIPE_E2E_TRAINER_IMAGE (a CPU trainer image the cluster can pull) enables the scenario that
trains examples-sized jobs to Succeeded.

On the local control plane (`make test`, or KUBECONFIG=.cluster/kubeconfig after `make cluster`) the
chart's operator already runs as a process under its ServiceAccount, pods live on kwok nodes, and
three more fixtures work (elsewhere they skip): `fail_pod_with_kwok` and `finish_pod_with_kwok`
drive a pod through kwok's stages, `operators` starts and kills operator processes (see
tests/local_cluster.py).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import yaml
from local_cluster import STATE, Operators, complete_pod, fail_pod

ROOT = Path(__file__).resolve().parents[2]


def on_local_cluster() -> bool:
    """True against the cluster of scripts/cluster/ (its kubeconfig, or with-cluster.sh's flag)."""
    if os.environ.get("RECIPE_E2E_LOCAL_CLUSTER") == "1":
        return True
    kubeconfig = os.environ.get("KUBECONFIG")
    return bool(kubeconfig) and Path(kubeconfig).resolve() == (STATE / "kubeconfig").resolve()


def installed_operator() -> bool:
    return os.environ.get("RECIPE_E2E_INSTALLED_OPERATOR") == "1" or on_local_cluster()


def needs_local_cluster() -> None:
    if not on_local_cluster():
        pytest.skip("needs the local control plane of scripts/cluster/ (make test, or make cluster)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("KUBECONFIG"):
        return
    skip = pytest.mark.skip(reason="e2e needs a real cluster: set KUBECONFIG (make e2e)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def api():
    import kubernetes

    kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    client = kubernetes.client.ApiClient()
    ext = kubernetes.client.ApiextensionsV1Api(client)
    crd = yaml.safe_load((ROOT / "crds" / "recipetrainingjobs.yaml").read_text())
    try:
        ext.create_custom_resource_definition(crd)
        time.sleep(3)  # let the API server serve the new resource
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    return client


@pytest.fixture()
def namespace(api):
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    name = f"rtj-e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture()
def operator(namespace):
    if installed_operator():
        yield namespace
        return
    from kopf.testing import KopfRunner

    args = ["run", "--standalone", "--namespace", namespace, "-m", "recipe_operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield namespace
    assert runner.exit_code == 0, runner.output[-3000:]


@pytest.fixture()
def operators():
    """Start, stop and kill operator processes under the chart's ServiceAccount (local cluster)."""
    needs_local_cluster()
    processes = Operators()
    yield processes
    processes.cleanup()


@pytest.fixture()
def fail_pod_with_kwok(api):
    """`fail(namespace, pod, exit_code=137, reason="OOMKilled")`: a Running pod fails as a kubelet
    would report it, through kwok's chaos stage (local cluster)."""
    import kubernetes

    needs_local_cluster()
    core = kubernetes.client.CoreV1Api(api)
    return lambda namespace, pod, **how: fail_pod(core, namespace, pod, **how)


@pytest.fixture()
def finish_pod_with_kwok(api):
    """`finish(namespace, pod)`: a Running Job pod exits 0 (local cluster)."""
    import kubernetes

    needs_local_cluster()
    core = kubernetes.client.CoreV1Api(api)
    return lambda namespace, pod: complete_pod(core, namespace, pod)
