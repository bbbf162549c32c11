"""Shared helpers for the chart tests: the real helm and promtool binaries, and rendered manifests.

`scripts/install-tools.sh` puts helm in .tools/bin (or set HELM); promtool comes from Debian's
`prometheus` package. Nothing here is mocked: a missing binary is a test failure that says how to
install it, because a chart test that silently skips proves nothing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "recipe-training-operator"
KUBE_VERSION = "1.35.0"
RELEASE = "rto"
NAMESPACE = "recipe-training"

# Values for each optional feature, one at a time, plus all together. Tests are parametrised on these.
FEATURES: dict[str, dict] = {
    "defaults": {},
    "serviceMonitor": {"serviceMonitor": {"enabled": True}},
    "podMonitor": {"podMonitor": {"enabled": True}},
    "prometheusRule": {"prometheusRule": {"enabled": True}, "serviceMonitor": {"enabled": True}},
    "dashboards": {"grafana": {"dashboards": {"enabled": True}}},
    "webhook": {"webhook": {"enabled": True}},
    "leaderElection": {"replicaCount": 2},
    "webhookLocal": {
        "webhook": {"enabled": True, "url": "https://127.0.0.1:9443", "failurePolicy": "Ignore"}
    },
    "webhookCertManager": {"webhook": {"enabled": True, "certManager": {"enabled": True}}},
    "watchNamespaces": {
        "watchNamespaces": ["ml", "research"],
        "replicaCount": 2,
        "webhook": {"enabled": True},
    },
    "networkPolicy": {
        "networkPolicy": {"enabled": True, "apiServerCidrs": ["10.0.0.0/24"]},
        "watchNamespaces": ["ml", "research"],
        "webhook": {"enabled": True},
    },
    "all": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafana": {"dashboards": {"enabled": True, "folder": "Training"}},
        "webhook": {"enabled": True},
        "replicaCount": 2,
    },
}


def helm_path() -> str:
    path = os.environ.get("HELM") or str(ROOT / ".tools" / "bin" / "helm")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"helm not found at {path}: run `bash scripts/install-tools.sh` (or set HELM)")
    return path


def promtool_path() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).is_file():
        pytest.fail("promtool not found: run `bash scripts/install-tools.sh` (apt package prometheus)")
    return path


def helm_env() -> dict[str, str]:
    tools = ROOT / ".tools" / "helm"
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(tools / "cache"),
        "HELM_CONFIG_HOME": str(tools / "config"),
        "HELM_DATA_HOME": str(tools / "data"),
    }


def helm(*args: str, values: dict | None = None) -> subprocess.CompletedProcess:
    """Run helm with the given arguments (and a values file when values are given); never raises."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as vf:
        json.dump(values or {}, vf)
        vf.flush()
        return subprocess.run(
            [helm_path(), *args, *(["-f", vf.name] if values is not None else [])],
            capture_output=True,
            text=True,
            env=helm_env(),
            timeout=120,
        )


@functools.cache
def _render_cached(values_json: str, release: str, namespace: str) -> tuple[str, ...]:
    result = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
        values=json.loads(values_json),
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return (result.stdout,)


def render_text(values: dict | None = None, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    return _render_cached(json.dumps(values or {}, sort_keys=True), release, namespace)[0]


def render(values: dict | None = None, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    """The objects `helm template` renders (CRDs from crds/ included), parsed."""
    return [doc for doc in yaml.safe_load_all(render_text(values, release, namespace)) if doc]


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, rendered {len(found)}"
    return found[0]


def container_env(objs: list[dict]) -> dict[str, str]:
    deployment = one(objs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}
