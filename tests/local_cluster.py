"""The local control plane of `make cluster` (scripts/cluster/) as a test sees it.

* Pods on kwok nodes run nothing; their lives come from kwok Stages (scripts/cluster/kwok/stages.yaml).
  `fail_pod` puts kwok's chaos stage on a Running pod (exit code and reason from annotations, e.g.
  137/OOMKilled), `complete_pod` lets one finish with exit code 0. Both are one API patch, as a
  person would do with `kubectl label/annotate`, and work on any cluster that runs those stages.
* `Operators` starts and kills `recipe-operator` processes under the chart's ServiceAccount token
  (scripts/cluster/operator.sh), for "operator killed mid-launch" and "two replicas, failover".
* `Operators.upgrade_chart` re-installs the chart with other values (real helm) and restarts the
  operators so they run with the Deployment's new environment; cleanup restores the baseline.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "cluster"
STATE = Path(os.environ.get("CLUSTER_STATE", ROOT / ".cluster"))

FAIL_STAGE = "pod-container-running-failed.stage.kwok.x-k8s.io"
COMPLETE_STAGE = "pod-complete.stage.kwok.x-k8s.io"
MAIN_OPERATOR = "operator"  # the process up.sh starts; every test finds it running
EXTRA_PORT_BASE = 28100  # extra operators get 28100+10*i (health), +1 (metrics), +2 (webhook)


def fail_pod(
    core: Any,
    namespace: str,
    pod: str,
    *,
    exit_code: int = 137,
    reason: str = "OOMKilled",
    message: str = "failed by the test through kwok's pod-container-running-failed stage",
    container: str | None = None,
) -> None:
    """Make a Running pod fail as a kubelet would report it: phase Failed, the container
    terminated with `exit_code` and `reason`. kwok applies it about 1-2 s later."""
    annotations = {
        f"{FAIL_STAGE}/exit-code": str(exit_code),
        f"{FAIL_STAGE}/reason": reason,
        f"{FAIL_STAGE}/message": message,
    }
    if container:
        annotations[f"{FAIL_STAGE}/container-name"] = container
    body = {"metadata": {"labels": {FAIL_STAGE: "true"}, "annotations": annotations}}
    core.patch_namespaced_pod(pod, namespace, body)


def complete_pod(core: Any, namespace: str, pod: str) -> None:
    """Let a Running Job pod finish with exit code 0 (phase Succeeded)."""
    core.patch_namespaced_pod(pod, namespace, {"metadata": {"labels": {COMPLETE_STAGE: "true"}}})


def _script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/cluster/{name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


class Operators:
    """Operator processes of one test. Extra ones are stopped at cleanup; the main one is
    restarted if the test stopped or killed it, so the next test finds the cluster as up.sh left it."""

    def __init__(self) -> None:
        self.extra: list[str] = []
        self.chart_changed = False

    def pid(self, name: str) -> int | None:
        pidfile = STATE / "run" / f"{name}.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self, name: str, **env: str) -> None:
        """Start one more operator; `env` overrides RECIPE_OPERATOR_* variables of the chart's."""
        if name != MAIN_OPERATOR and name not in self.extra:
            self.extra.append(name)
        overrides = {}
        if name != MAIN_OPERATOR:
            base = EXTRA_PORT_BASE + 10 * self.extra.index(name)
            overrides = {
                "RECIPE_OPERATOR_HEALTH_PORT": str(base),
                "RECIPE_OPERATOR_METRICS_PORT": str(base + 1),
                "RECIPE_OPERATOR_WEBHOOK_PORT": str(base + 2),
            }
        overrides.update(env)
        _script("operator.sh", "start", name, *(f"{k}={v}" for k, v in overrides.items()))

    def kill(self, name: str = MAIN_OPERATOR, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill an operator as the kernel's OOM killer or a node loss would: no cleanup runs."""
        _script("operator.sh", "stop", name, sig.name.removeprefix("SIG"))

    def stop(self, name: str = MAIN_OPERATOR) -> None:
        """Stop an operator gracefully (SIGTERM, as a pod deletion does)."""
        _script("operator.sh", "stop", name, "TERM")

    def env(self, name: str = MAIN_OPERATOR) -> dict[str, str]:
        """The RECIPE_OPERATOR_* environment a running operator was started with (operator.sh)."""
        lines = (STATE / "run" / f"{name}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def metrics_port(self, name: str = MAIN_OPERATOR) -> int:
        """Port of that operator's own /metrics on 127.0.0.1 (e.g. to count its reconciles)."""
        return int(self.env(name)["RECIPE_OPERATOR_METRICS_PORT"])

    def log(self, name: str = MAIN_OPERATOR) -> str:
        return (STATE / "logs" / f"{name}.log").read_text(errors="replace")

    def upgrade_chart(self, *helm_args: str, in_cluster: bool = False) -> None:
        """`helm upgrade` the chart with these extra arguments (e.g. "--set", "peering.enabled=true")
        and restart the running operators, whose environment comes from the Deployment.
        `in_cluster`: the chart's own Deployment runs the operator image on the real node."""
        running = [name for name in [MAIN_OPERATOR, *self.extra] if self.alive(name)]
        for name in running:
            self.stop(name)
        _script("chart.sh", *helm_args, env={"CLUSTER_CHART_OPERATOR": "in-cluster"} if in_cluster else None)
        self.chart_changed = True
        for name in running:
            self.start(name)

    def cleanup(self) -> None:
        for name in self.extra:
            self.kill(name)
        try:
            if self.chart_changed:
                self.stop(MAIN_OPERATOR)
                _script("chart.sh")
        finally:  # even when helm fails, the next test must find an operator running
            if not self.alive(MAIN_OPERATOR):
                self.start(MAIN_OPERATOR)
