#!/usr/bin/env python3
"""Play the kubelet for the chart's operator pod, so the operator can run as a local process.

kwok nodes run no containers, so `scripts/cluster/operator.sh` runs `recipe-operator` here instead.
This script gives that process what a kubelet would give the pod, read from the Deployment the chart
rendered (never retyped, so a chart change reaches the local operator too):

  spec          print the container's env (plain values), args and ServiceAccount, one per line
                (`ENV k=v`, `ARG a`, `SA name`); Secret and ConfigMap volumes are written under
                .cluster/mounts/<volume>/ (an emptyDir is an empty directory there) and env values
                under a mount path point there instead
  route   NAME PORT IP   add an EndpointSlice to every Service in the operator namespace that a
                webhook configuration calls, pointing at IP:PORT (the process's webhook server), as
                the EndpointSlice controller does for a Ready pod
  unroute NAME  remove them again (the pod is gone)

The API server resolves a Service-referenced webhook through its EndpointSlices
(--enable-aggregator-routing), so the chart's own webhook configuration, Service and certificate
are used unchanged. Endpoint IPs may not be loopback, hence the gateway address of the cluster's own
bridge (network.sh), never this machine's external address.
Standard library only: it runs before the project's virtualenv matters.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

KUBECTL = os.environ["KUBECTL"]
STATE = Path(os.environ["STATE"])
NAMESPACE = os.environ["OPERATOR_NAMESPACE"]
RELEASE = os.environ["RELEASE"]
MANAGED_BY = "chef-genius-local-cluster"


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"operator_pod: kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def deployment() -> dict:
    items = json.loads(
        kubectl(
            "get", "deployment", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "json"
        )
    )["items"]
    if not items:
        sys.exit(f"operator_pod: no Deployment of release {RELEASE} in {NAMESPACE}: install the chart first")
    return items[0]


def materialize_volumes(pod: dict, container: dict) -> dict[str, Path]:
    """Write Secret/ConfigMap volumes to disk; return {mount path in the pod: local directory}."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" in volume:
            obj = json.loads(
                kubectl("get", "secret", volume["secret"]["secretName"], "-n", NAMESPACE, "-o", "json")
            )
            files = {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}
        elif "configMap" in volume:
            obj = json.loads(
                kubectl("get", "configmap", volume["configMap"]["name"], "-n", NAMESPACE, "-o", "json")
            )
            files = {key: value.encode() for key, value in (obj.get("data") or {}).items()}
        elif "emptyDir" in volume and not mount["mountPath"].startswith("/tmp"):
            files = {}  # an empty directory the process writes into (the operator's webhook certificate)
        else:
            continue  # the process has its own /tmp
        local = STATE / "mounts" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        for key, content in files.items():
            path = local / key
            path.write_bytes(content)
            path.chmod(0o600)
        if mount.get("subPath"):
            mounts[mount["mountPath"]] = local / mount["subPath"]
        else:
            mounts[mount["mountPath"]] = local
    return mounts


def spec() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = materialize_volumes(pod, container)
    print(f"SA {pod.get('serviceAccountName') or 'default'}")
    for var in container.get("env", []):
        if "value" not in var:
            continue  # valueFrom (downward API, secrets) is not used by the chart's operator
        value = var["value"]
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                value = str(local) + value[len(mount_path.rstrip("/")) :]
        print(f"ENV {var['name']}={value}")
    for arg in container.get("args", []):
        print(f"ARG {arg}")


def webhook_services() -> list[dict]:
    """Services in the operator namespace that a ValidatingWebhookConfiguration calls."""
    configs = json.loads(kubectl("get", "validatingwebhookconfigurations", "-o", "json"))["items"]
    names = {
        webhook["clientConfig"]["service"]["name"]
        for config in configs
        for webhook in config.get("webhooks", [])
        if (webhook.get("clientConfig", {}).get("service") or {}).get("namespace") == NAMESPACE
    }
    return [
        json.loads(kubectl("get", "service", name, "-n", NAMESPACE, "-o", "json")) for name in sorted(names)
    ]


def route(name: str, port: int, ip: str) -> None:
    for service in webhook_services():
        svc = service["metadata"]["name"]
        ports = [
            {"name": p.get("name", ""), "port": port, "protocol": "TCP"} for p in service["spec"]["ports"]
        ]
        kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{svc}-{name}",
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": svc,
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    "chefgenius.io/local-operator": name,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": ports,
        }))  # fmt: skip
        print(f"webhook Service {NAMESPACE}/{svc} -> https://{ip}:{port} ({name})", file=sys.stderr)


def unroute(name: str) -> None:
    kubectl(
        "delete", "endpointslices", "-n", NAMESPACE, "--ignore-not-found",
        "-l", f"chefgenius.io/local-operator={name},endpointslice.kubernetes.io/managed-by={MANAGED_BY}",
    )  # fmt: skip


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "spec" and not args:
        spec()
    elif command == "route" and len(args) == 3:
        route(args[0], int(args[1]), args[2])
    elif command == "unroute" and len(args) == 1:
        unroute(args[0])
    else:
        sys.exit("usage: operator_pod.py spec | route NAME PORT IP | unroute NAME")
