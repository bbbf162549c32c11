"""`recipe-operator` as a process: settings from the environment, liveness and metrics ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from kmock_cluster import wait_for
from recipe_api.launch import free_port
from test_operator_behaviour import NS, rtj


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_the_console_script_reconciles_and_serves_health_and_metrics(cluster, tmp_path):
    health, metrics = free_port(), free_port()
    env = {
        **os.environ,
        "RECIPE_OPERATOR_NAMESPACES": "",
        "RECIPE_OPERATOR_HEALTH_PORT": str(health),
        "RECIPE_OPERATOR_METRICS_PORT": str(metrics),
        "RECIPE_OPERATOR_TRAINER_IMAGE": "registry.example/trainer:7",
    }
    script = Path(sys.executable).parent / "recipe-operator"
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen([str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cluster.create(rtj("from-cli"))
        job = wait_for(lambda: cluster.get("Job", NS, "from-cli"), what="the Job")
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/trainer:7"
        wait_for(lambda: http_get(f"http://127.0.0.1:{health}/healthz") is not None, what="/healthz")
        text = wait_for(
            lambda: (
                (t := http_get(f"http://127.0.0.1:{metrics}/metrics")) and "jobs_created_total{" in t and t
            ),
            what="operator metrics",
        )
        assert 'recipe_operator_jobs_created_total{namespace="ml"} 1.0' in text
        assert 'recipe_operator_jobs{namespace="ml",phase="Launching"} 1.0' in text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
    assert process.returncode == 0, (tmp_path / "operator.log").read_text()[-3000:]
