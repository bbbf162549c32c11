"""A stand-in kubelet: run the pods of the operator's own Indexed Job as local processes.

The operator's pure builders produce the ConfigMap and the batch/v1 Job of an attempt; this
harness starts one pod per completion index the way a kubelet would, and reports each pod back
as the API would show it (a pod dict the operator's `PodView.from_dict` reads). What it does:

* the container's `command` + `args`, with `$(VAR)` references expanded from the container's
  environment (the kubelet's own rule), nothing else rewritten;
* the environment: the image's ENV (`image_env`: trainer_image/Dockerfile's venv on PATH, HOME,
  caches), then the spec's `env`, with `valueFrom.fieldRef` resolved against the pod's own
  metadata (the completion-index annotation the Job controller sets), plus HOSTNAME;
* each pod in its own mount, UTS and PID namespaces (`unshare`, we are root): the container's
  command is PID 1, its hostname is `<job>-<index>` as for Indexed Job pods, and the spec's
  volumeMounts are bind mounts at their real paths, as a kubelet makes them: the ConfigMap's
  files (read-only), a host directory per PersistentVolumeClaim (one stands in for the checkpoint PVC, shared by all pods, another for
  the dataset volume), a tmpfs for the `emptyDir: {medium: Memory}` at /dev/shm, a file of its
  own at `terminationMessagePath`, and /etc/hosts;
* /etc/hosts is where the one name mapping lives: a kubelet writes each pod's hosts file (its own
  hostname) and cluster DNS resolves `<job>-<i>.<subdomain>`; here both point at 127.0.0.1,
  because all pods share this machine's network. So `--master_addr=<job>-0.<service>` in the
  args is resolved, not rewritten;
* each pod is a session of its own (every process it starts stays in it, whatever process group
  the pod's supervisor gives the launcher): SIGKILL of all of it is a node lost, SIGSTOP of all of
  it a hung node, SIGTERM to its PID 1 what the kubelet sends when it deletes a pod (preemption,
  eviction), and `Gang.close()` kills every pod and checks that no process of any pod survives.

What it does not model: pod networking (one network namespace, all pods on 127.0.0.1; no pod IPs,
no NetworkPolicy, and a killed peer's sockets are reset by this kernel at once, where a lost node
just goes silent until the collective timeout), NCCL and GPUs (gloo on CPU), resource limits and
the OOM killer, runAsUser/fsGroup (processes run as root), image pulls, and the Job controller
(`Gang` does not delete the other pods when one fails: the tests check that they exit by
themselves).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from recipe_api.contract import POD_SUPERVISOR_MODULE

# trainer_image/Dockerfile's ENTRYPOINT, used only for a container without a `command`.
IMAGE_ENTRYPOINT = ["python", "-m", POD_SUPERVISOR_MODULE]
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
POD_IP = "127.0.0.1"
# The kubelet keeps at most this much of a termination message, and with FallbackToLogsOnError
# the last lines of the log when the container failed without writing one.
TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048
MOUNT, HOSTNAME_BIN = shutil.which("mount") or "/bin/mount", shutil.which("hostname") or "/bin/hostname"
# Mount and UTS namespaces need root (CI and the dev machines run as root) and util-linux's unshare.
NAMESPACES_MISSING = (
    None
    if os.geteuid() == 0 and shutil.which("unshare")
    else "the stand-in kubelet needs root and `unshare` (util-linux) for per-pod mount namespaces"
)


def needs_namespaces() -> pytest.MarkDecorator:
    """The mark for tests of the stand-in kubelet: skipped where it cannot run, except under CI=true
    (CI runs as root), where a missing prerequisite fails the collection with its reason: a gang
    test that silently skips in CI proves nothing."""
    if NAMESPACES_MISSING and os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the gang tests: {NAMESPACES_MISSING}", pytrace=False)
    return pytest.mark.skipif(NAMESPACES_MISSING is not None, reason=str(NAMESPACES_MISSING))


def image_env(extensions_dir: Path, home: Path) -> dict[str, str]:
    """The trainer image's ENV (trainer_image/Dockerfile), with this machine's venv as /opt/venv,
    plus OMP_NUM_THREADS=1: two "nodes" share two cores here, and nothing sets a thread count."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": str(Path(venv_bin).parent),
        "PYTHONUNBUFFERED": "1",
        "HOME": str(home),
        "TORCH_EXTENSIONS_DIR": str(extensions_dir),
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }


def expand_references(text: str, env: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion in command/args: defined names are replaced, `$$` escapes,
    an undefined reference stays as written."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def resolve_field_ref(path: str, pod: dict[str, Any]) -> str:
    """The downward API paths a container env may use, against the pod's own object."""
    meta = pod["metadata"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta.get("namespace") or "default",
        "spec.nodeName": "harness-node",
        "spec.serviceAccountName": "default",
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
    }
    if path not in simple:
        raise ValueError(f"fieldRef {path!r} is not one the harness resolves; add it to resolve_field_ref")
    return simple[path]


def container_env(container: dict, pod: dict, base: dict[str, str]) -> dict[str, str]:
    """Image ENV, then the spec's env in order (later entries may reference earlier ones)."""
    env = dict(base)
    env["HOSTNAME"] = pod["spec"]["hostname"]
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand_references(entry["value"], env)
        elif "fieldRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = resolve_field_ref(entry["valueFrom"]["fieldRef"]["fieldPath"], pod)
        else:
            raise ValueError(f"env {entry['name']}: only value and fieldRef are modelled (no Secrets here)")
    return env


@dataclass
class Pod:
    index: int
    name: str
    hostname: str
    manifest: dict  # the pod object as the API would hold it (metadata + spec)
    container_name: str
    log_path: Path
    termination_path: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def exit_code(self) -> int | None:
        """As the kubelet reports it: 128+N for a container killed by signal N."""
        code = self.process.poll() if self.process else None
        if code is None:
            return None
        if self.finished is None:
            self.finished = time.monotonic()
        return 128 - code if code < 0 else code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def termination_message(self) -> str:
        """The termination-log file, else (FallbackToLogsOnError, failed) the log's tail."""
        text = self.termination_path.read_text(errors="replace")[:TERMINATION_MESSAGE_LIMIT]
        if not text.strip() and self.exit_code not in (None, 0):
            tail = "\n".join(self.log().splitlines()[-FALLBACK_LOG_LINES:])
            text = tail[-FALLBACK_LOG_BYTES:]
        return text

    def to_dict(self) -> dict[str, Any]:
        """The pod with the status a kubelet would report."""
        code = self.exit_code
        if code is None:
            phase, state = "Running", {"running": {}}
        else:
            phase = "Succeeded" if code == 0 else "Failed"
            reason = "Completed" if code == 0 else "Error"
            state = {
                "terminated": {"exitCode": code, "reason": reason, "message": self.termination_message()}
            }
        status = {
            "phase": phase,
            "podIP": POD_IP,
            "containerStatuses": [{"name": self.container_name, "state": state}],
        }
        return {**self.manifest, "status": status}


@dataclass
class Gang:
    """The pods of one Indexed Job, started together (see the module docstring)."""

    job: dict
    config_map: dict
    claims: dict[str, Path]  # PersistentVolumeClaim name -> host directory
    work: Path  # per-pod scratch: hosts files, ConfigMap files, logs, termination logs
    base_env: dict[str, str]
    pods: list[Pod] = field(default_factory=list)
    _created_mountpoints: list[Path] = field(default_factory=list)

    # ---------------------------------------------------------------- pods as the Job controller makes them

    def _pod_manifest(self, index: int) -> dict:
        template = self.job["spec"]["template"]
        job_name = self.job["metadata"]["name"]
        meta = {
            "name": f"{job_name}-{index}-harness",
            "namespace": self.job["metadata"].get("namespace") or "default",
            "labels": {**template["metadata"].get("labels", {}), COMPLETION_INDEX_ANNOTATION: str(index)},
            "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)},
        }
        spec = {**template["spec"], "hostname": f"{job_name}-{index}"}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _dns_names(self) -> list[str]:
        """`<job>-<i>.<subdomain>` for every pod: what the headless Service gives cluster DNS."""
        job_name = self.job["metadata"]["name"]
        subdomain = self.job["spec"]["template"]["spec"]["subdomain"]
        return [f"{job_name}-{i}.{subdomain}" for i in range(self.job["spec"]["completions"])]

    def _hosts_file(self, pod: dict, path: Path) -> Path:
        hostname, subdomain = pod["spec"]["hostname"], pod["spec"]["subdomain"]
        namespace = pod["metadata"]["namespace"]
        lines = [
            "127.0.0.1\tlocalhost",
            f"{POD_IP}\t{hostname}.{subdomain}.{namespace}.svc.cluster.local\t{hostname}",  # kubelet
            *(f"{POD_IP}\t{name}" for name in self._dns_names()),  # cluster DNS
        ]
        path.write_text("\n".join(lines) + "\n")
        return path

    # ---------------------------------------------------------------- volumes as the kubelet mounts them

    def _volume_source(self, volume: dict, pod_dir: Path) -> tuple[Path, bool]:
        """(host path, is tmpfs) for one of the pod's volumes."""
        if "configMap" in volume:
            if volume["configMap"]["name"] != self.config_map["metadata"]["name"]:
                raise ValueError(
                    f"volume {volume['name']}: ConfigMap {volume['configMap']['name']} not given"
                )
            files = pod_dir / f"configmap-{volume['name']}"
            files.mkdir()
            for key, text in self.config_map["data"].items():
                (files / key).write_text(text)
            return files, False
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in self.claims:
                raise ValueError(f"volume {volume['name']}: no directory given for claim {claim!r}")
            return self.claims[claim], False
        if "emptyDir" in volume:
            if volume["emptyDir"].get("medium") == "Memory":
                return Path("tmpfs"), True
            empty = pod_dir / f"emptydir-{volume['name']}"
            empty.mkdir()
            return empty, False
        raise ValueError(f"volume {volume['name']}: kind not modelled: {sorted(volume)}")

    def _mountpoint(self, target: Path, is_file: bool) -> None:
        """Mount targets must exist; ones missing on this machine are made, and removed at close."""
        if target.exists():
            return
        if is_file:
            target.touch()
        else:
            target.mkdir(parents=True)
        self._created_mountpoints.append(target)

    def _setup_script(self, pod: dict, container: dict, pod_dir: Path, termination: Path) -> str:
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        commands = ["set -e"]
        for mount in container.get("volumeMounts") or []:
            source, tmpfs = self._volume_source(volumes[mount["name"]], pod_dir)
            target = Path(mount["mountPath"])
            self._mountpoint(target, is_file=False)
            if tmpfs:
                commands.append(f"{MOUNT} -t tmpfs -o size=256m tmpfs {shlex.quote(str(target))}")
            else:
                commands.append(f"{MOUNT} --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
            if mount.get("readOnly"):
                commands.append(f"{MOUNT} -o remount,bind,ro {shlex.quote(str(target))}")
        message_path = Path(container.get("terminationMessagePath", "/dev/termination-log"))
        self._mountpoint(message_path, is_file=True)
        hosts = self._hosts_file(pod, pod_dir / "hosts")
        commands += [
            f"{MOUNT} --bind {shlex.quote(str(termination))} {shlex.quote(str(message_path))}",
            f"{MOUNT} --bind {shlex.quote(str(hosts))} /etc/hosts",
            f"{HOSTNAME_BIN} {shlex.quote(pod['spec']['hostname'])}",
            f"cd {shlex.quote(str(pod_dir / 'workdir'))}",  # the image's WORKDIR
            'exec "$@"',
        ]
        return "\n".join(commands)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Gang:
        self.work.mkdir(parents=True, exist_ok=True)
        for index in range(self.job["spec"]["completions"]):
            manifest = self._pod_manifest(index)
            (container,) = manifest["spec"]["containers"]
            pod_dir = self.work / manifest["metadata"]["name"]
            (pod_dir / "workdir").mkdir(parents=True)
            termination = pod_dir / "termination-log"
            termination.touch()
            env = container_env(container, manifest, self.base_env)
            argv = [expand_references(a, env) for a in (container.get("command") or IMAGE_ENTRYPOINT)]
            argv += [expand_references(a, env) for a in container.get("args") or []]
            script = self._setup_script(manifest, container, pod_dir, termination)
            pod = Pod(
                index=index,
                name=manifest["metadata"]["name"],
                hostname=manifest["spec"]["hostname"],
                manifest=manifest,
                container_name=container["name"],
                log_path=pod_dir / "log",
                termination_path=termination,
            )
            with pod.log_path.open("wb") as log:
                pod.process = subprocess.Popen(
                    [
                        "unshare",
                        "--mount",
                        "--uts",
                        "--pid",
                        "--fork",
                        "--mount-proc",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        script,
                        "pod",
                        *argv,
                    ],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # the pod's process group: its whole tree, killable at once
                )
            pod.started = time.monotonic()
            self.pods.append(pod)
        return self

    def wait(self, timeout: float) -> list[int]:
        """Exit codes of all pods once every pod has ended; TimeoutError names the ones still running."""
        deadline = time.monotonic() + timeout
        while any(p.exit_code is None for p in self.pods):
            if time.monotonic() > deadline:
                running = [p.name for p in self.pods if p.exit_code is None]
                raise TimeoutError(f"pods still running after {timeout:.0f}s: {running}\n{self.logs()}")
            time.sleep(0.2)
        return [p.exit_code for p in self.pods]

    def kill_pod(self, index: int) -> None:
        """SIGKILL the pod's whole process tree at once: a node lost."""
        self._signal_session(self.pods[index], signal.SIGKILL)

    def stop_pod(self, index: int) -> None:
        """SIGSTOP the pod's whole process tree: a node that hangs, its connections left open."""
        self._signal_session(self.pods[index], signal.SIGSTOP)

    def terminate_pod(self, index: int) -> None:
        """SIGTERM to the container's PID 1 only, as the kubelet does when the pod is deleted
        (preemption, eviction); the SIGKILL a kubelet sends after the grace period is `close()`."""
        unshare = self.pods[index].process.pid  # `unshare --fork`: its one child is the pod's PID 1
        (pid1,) = [pid for pid in self._session_pids({unshare}) if _parent_of(pid) == unshare]
        os.kill(pid1, signal.SIGTERM)

    def _signal_session(self, pod: Pod, signum: int) -> None:
        """Every process of the pod: its session, not its process group, since the pod's supervisor
        runs the launcher in a group of its own."""
        for pid in self._session_pids({pod.process.pid}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def job_dict(self) -> dict[str, Any]:
        """The Job as the Job controller would report it (backoffLimit 0: one failed pod fails it)."""
        codes = [p.exit_code for p in self.pods]
        conditions = []
        if all(c == 0 for c in codes):
            conditions.append({"type": "Complete", "status": "True"})
        elif any(c not in (None, 0) for c in codes):
            conditions.append({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
        active = sum(c is None for c in codes)
        return {**self.job, "status": {"conditions": conditions, "active": active}}

    def pod_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.pods]

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} (exit {p.exit_code})\n{p.log()[-6000:]}" for p in self.pods)

    def survivors(self) -> list[int]:
        """PIDs still in any pod's session (every process a pod started inherits it)."""
        return self._session_pids({p.process.pid for p in self.pods if p.process})

    @staticmethod
    def _session_pids(sessions: set[int]) -> list[int]:
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry.name)) in sessions:
                        alive.append(int(entry.name))
        return alive

    def close(self) -> None:
        """Kill every pod's process group, reap, and check that nothing of the gang survives."""
        for pod in self.pods:
            if pod.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.process.pid, signal.SIGKILL)
        for pod in self.pods:
            if pod.process is not None:
                pod.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while (left := self.survivors()) and time.monotonic() < deadline:
            for pid in left:  # grandchildren that were reparented keep the session
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for target in reversed(self._created_mountpoints):
            with contextlib.suppress(OSError):
                target.unlink() if target.is_file() else target.rmdir()
        if left:
            raise RuntimeError(f"processes of the gang survived SIGKILL: {left}")

    def __enter__(self) -> Gang:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and ")"
