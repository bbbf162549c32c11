"""Operator latency and memory against the kmock API emulator, or a real control plane.

    .venv/bin/python bench/operator_latency.py [--jobs 200] [--burst 20] [--memory-jobs 1000]
    .venv/bin/python bench/operator_latency.py --real [--operator-pid-file .cluster/run/operator.pid]

With --real the cluster is $KUBECONFIG's (e.g. `make cluster`): the operator already running there
(the chart's, as a local process) is measured, jobs go to a fresh namespace that is deleted at the
end, and two more figures come out: create -> Running (all pods Running on kwok's nodes, as the
job's status says) and status writes per job per minute while every job sits Running. See
run_real() for details.

1. Latency: RecipeTrainingJobs are created in bursts (`--burst` at once, a second apart) and
   the time from each create call returning to its batch/v1 Job existing is recorded
   (p50/p99; goal p99 <= 1 s). Jobs are seen through a watch stream.
2. Memory: `--memory-jobs` jobs exist and have been launched; the operator process's resident
   memory (VmRSS, and the peak VmHWM) is read from /proc (goal <= 300 MB).

The operator is the real `recipe-operator` console script in its own process; kmock runs in
this process on 127.0.0.1, so both share the machine's cores (figures are upper bounds for
the operator's own cost). Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from recipe_api.launch import free_port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "operator"))  # the kmock harness the behaviour tests use
sys.path.insert(0, str(REPO / "tests"))  # ...and the polling helper it imports

from kmock_cluster import running_emulator, wait_for, write_kubeconfig  # noqa: E402

NS = "bench"


def manifest(name: str) -> dict:
    return {
        "apiVersion": "training.chefgenius.io/v1alpha1",
        "kind": "RecipeTrainingJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": {"name": "google/flan-t5-small"}, "dataset": {"path": "/data/r.csv"}},
    }


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class JobWatcher(threading.Thread):
    """Watches Jobs (a streaming watch, as kubectl get -w) and records when each is ADDED."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.url = f"{cluster.url}/apis/batch/v1/namespaces/{NS}/jobs?watch=true"
        self.seen: dict[str, float] = {}

    def run(self) -> None:
        with urllib.request.urlopen(self.url) as stream:
            for line in stream:
                if line.strip():
                    event = json.loads(line)
                    if event.get("type") == "ADDED":
                        self.seen.setdefault(event["object"]["metadata"]["name"], time.perf_counter())


def create_in_bursts(cluster, names: list[str], burst: int, pause: float) -> dict[str, float]:
    created: dict[str, float] = {}
    for start in range(0, len(names), burst):
        for name in names[start : start + burst]:
            cluster.create(manifest(name))
            created[name] = time.perf_counter()
        time.sleep(pause)
    return created


def real_manifest(name: str, ns: str) -> dict:
    """One CPU pod per job (kwok runs nothing), all on one shared RWX claim: 1,000 jobs need no
    1,000 volumes, and every pod can be scheduled (2 kwok nodes x 256 pods)."""
    body = manifest(name)
    body["metadata"]["namespace"] = ns
    body["spec"]["resources"] = {
        "image": "registry.invalid/bench:none",
        "nodes": 1,
        "gpusPerNode": 0,
        "cpu": "10m",
        "memory": "16Mi",
    }
    body["spec"]["checkpoint"] = {"volume": {"claimName": "bench-shared"}}
    return body


def run_real(args: argparse.Namespace) -> int:
    """The same figures on a real API server, plus create -> Running and idle status writes.

    Timings come from watch streams opened before the first create (Jobs ADDED; RecipeTrainingJob
    status.phase Running), so they include the API server, the Job controller, the scheduler and
    kwok, which share this machine's cores with the operator. Idle writes: every job Running, a
    60 s watch on RecipeTrainingJobs counts MODIFIED events (each is one write)."""
    import uuid

    import kubernetes

    kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    api = kubernetes.client.ApiClient()
    core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
    pid = int(Path(args.operator_pid_file).read_text())
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    group, version, plural = "training.chefgenius.io", "v1alpha1", "recipetrainingjobs"
    job_seen: dict[str, float] = {}
    running_seen: dict[str, float] = {}
    modified: list[float] = []

    def watch_jobs() -> None:
        w = kubernetes.watch.Watch()
        for event in w.stream(
            kubernetes.client.BatchV1Api(api).list_namespaced_job, ns, timeout_seconds=3600
        ):
            job_seen.setdefault(event["raw_object"]["metadata"]["name"], time.perf_counter())

    def watch_rtjs() -> None:
        w = kubernetes.watch.Watch()
        stream = w.stream(
            custom.list_namespaced_custom_object, group, version, ns, plural, timeout_seconds=3600
        )
        for event in stream:
            obj = event["raw_object"]
            if event["type"] == "MODIFIED":
                modified.append(time.perf_counter())
            if (obj.get("status") or {}).get("phase") == "Running":
                running_seen.setdefault(obj["metadata"]["name"], time.perf_counter())

    try:
        core.create_namespaced_persistent_volume_claim(
            ns,
            {
                "metadata": {"name": "bench-shared"},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )
        for target in (watch_jobs, watch_rtjs):
            threading.Thread(target=target, daemon=True).start()
        time.sleep(2)
        idle_rss, _ = rss_mb(pid)
        created: dict[str, float] = {}

        def create(names: list[str], burst: int, pause: float) -> None:
            for start in range(0, len(names), burst):
                for name in names[start : start + burst]:
                    custom.create_namespaced_custom_object(
                        group, version, ns, plural, real_manifest(name, ns)
                    )
                    created[name] = time.perf_counter()
                time.sleep(pause)

        names = [f"lat-{i:04d}" for i in range(args.jobs)]
        create(names, args.burst, 1.0)
        wait_for(lambda: all(n in job_seen for n in names), timeout=900, what="every Job", interval=1.0)
        wait_for(
            lambda: all(n in running_seen for n in names),
            timeout=1800,
            what="every job Running",
            interval=1.0,
        )
        to_job = [job_seen[n] - created[n] for n in names]
        to_running = [running_seen[n] - created[n] for n in names]
        time.sleep(10)  # the Running transitions' own follow-up reconciles
        start = time.perf_counter()
        time.sleep(60)
        writes = sum(1 for t in modified if t >= start)
        more = [f"mem-{i:04d}" for i in range(max(0, args.memory_jobs - args.jobs))]
        create(more, 100, 0.5)
        wait_for(lambda: all(n in job_seen for n in more), timeout=1800, what="every Job", interval=1.0)
        time.sleep(10)
        rss, peak = rss_mb(pid)
    finally:
        core.delete_namespace(ns)

    print(f"## Operator on a real control plane ({os.cpu_count()} cores, Python {platform.python_version()})")
    print()
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    for label, values in (("create -> Job exists", to_job), ("create -> Running", to_running)):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(
            f"| {label}, p50 / p99 ({args.jobs} jobs, bursts of {args.burst}) | {p50 * 1000:.0f} / {p99 * 1000:.0f} ms | |"
        )
    print(
        f"| status writes per job per minute, {args.jobs} jobs Running, idle | {writes / args.jobs:.3f} ({writes} writes) | 0 |"
    )
    print(f"| operator RSS, idle | {idle_rss:.0f} MB | |")
    print(f"| operator RSS with {args.memory_jobs} jobs (peak) | {rss:.0f} MB ({peak:.0f} MB) | <= 300 MB |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--memory-jobs", type=int, default=1000)
    parser.add_argument("--real", action="store_true", help="measure the operator of $KUBECONFIG's cluster")
    parser.add_argument("--operator-pid-file", default=str(REPO / ".cluster" / "run" / "operator.pid"))
    args = parser.parse_args()
    if args.real:
        return run_real(args)

    with running_emulator() as cluster, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", cluster.url)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "RECIPE_OPERATOR_METRICS_PORT": "0",
            "RECIPE_OPERATOR_HEALTH_PORT": str(free_port()),
        }
        script = Path(sys.executable).parent / "recipe-operator"
        log = (Path(tmp) / "operator.log").open("w")
        operator = subprocess.Popen([str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(3)  # let kopf list and start its watches before the clock starts
            idle_rss, _ = rss_mb(operator.pid)
            watcher = JobWatcher(cluster)
            watcher.start()
            names = [f"lat-{i:04d}" for i in range(args.jobs)]
            created = create_in_bursts(cluster, names, args.burst, pause=1.0)
            wait_for(lambda: all(n in watcher.seen for n in names), timeout=300, what="every Job")
            latencies = [max(0.0, watcher.seen[n] - created[n]) for n in names]

            more = [f"mem-{i:04d}" for i in range(max(0, args.memory_jobs - args.jobs))]
            create_in_bursts(cluster, more, 100, pause=0.5)
            wait_for(lambda: all(n in watcher.seen for n in more), timeout=900, what="every Job")
            time.sleep(5)  # status patches and events settle
            rss, peak = rss_mb(operator.pid)
        finally:
            operator.send_signal(signal.SIGTERM)
            operator.wait(60)
            log.close()
            if os.environ.get("BENCH_KEEP_LOG"):
                Path(os.environ["BENCH_KEEP_LOG"]).write_text((Path(tmp) / "operator.log").read_text())

    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        f"## Operator ({platform.node() and 'this machine'}: {os.cpu_count()} cores, Python {platform.python_version()})"
    )
    print()
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    print(f"| create -> Job exists, p50 ({args.jobs} jobs, bursts of {args.burst}) | {p50 * 1000:.0f} ms | |")
    print(f"| create -> Job exists, p99 | {p99 * 1000:.0f} ms | <= 1000 ms |")
    print(
        f"| create -> Job exists, mean / max | {statistics.mean(latencies) * 1000:.0f} / {max(latencies) * 1000:.0f} ms | |"
    )
    print(f"| operator RSS, idle | {idle_rss:.0f} MB | |")
    print(f"| operator RSS with {args.memory_jobs} jobs (peak) | {rss:.0f} MB ({peak:.0f} MB) | <= 300 MB |")
    ok = p99 <= 1.0 and peak <= 300
    print()
    print("goals met" if ok else "GOALS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
