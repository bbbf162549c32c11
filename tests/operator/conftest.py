from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The kmock harness lives beside the tests (tests/ is on the path, this folder is not).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture()
def cluster(tmp_path, monkeypatch):
    import kubernetes.config.kube_config as kube_config
    from kmock_cluster import running_emulator, write_kubeconfig

    with running_emulator() as cluster:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        # Read by the operator at startup: scrape often, serve no metrics port (several runs per session).
        monkeypatch.setenv("RECIPE_OPERATOR_PROGRESS_INTERVAL_SECONDS", "0.5")
        monkeypatch.setenv("RECIPE_OPERATOR_METRICS_PORT", "0")
        # kopf logs in through the kubernetes client, whose default path is read at import time.
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        yield cluster


@pytest.fixture(autouse=True)
def _quiet_access_log():
    import logging

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
