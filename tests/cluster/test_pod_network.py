"""The cluster's pod network (scripts/cluster/network.sh) lets a pod reach the host and nothing beyond.

A real node's pods sit on the cluster's bridge with the host as their default gateway, and the host
forwards (the kubelet needs net.ipv4.ip_forward). A packet a pod sends to an address that is neither
the pod range nor the host's (a TCP reset to a Service address that conntrack no longer translates,
seen once at teardown) must be refused on the host, not forwarded out of the machine's interface.

Each test runs the real network.sh and guard.sh in a network namespace of its own shaped like this
machine (an "external" bridge without ports carries the default route), with a second namespace as
the pod, joined to the cluster's bridge by a veth pair, as the CNI bridge plugin joins a real pod. Both live in a PID namespace of the test's own, so no
process of the test outlives it, even when it times out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from network_namespaces import requirements

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "cluster"

pytestmark = requirements("the pod network's tests", (shutil.which("nsenter"), "util-linux's nsenter"))

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected", sys.argv[1])
except OSError as exc:
    print("refused", sys.argv[1], exc.strerror)
"""

# Inside the "machine" namespace: its external interface, the cluster's bridge (network.sh up), a pod
# namespace on the bridge, a listener on the gateway, then the pod's connections, under the guard.
SCRIPT = """
set -e
ip link set lo up
ip link add ext0 type bridge && ip addr add 192.0.2.50/24 dev ext0 && ip link set ext0 up
ip route add default via 192.0.2.1 dev ext0
sysctl -qw net.ipv4.ip_forward=1
"$SCRIPTS/network.sh" up >/dev/null
unshare -n sleep 60 & pod=$!
trap 'kill $pod 2>/dev/null; "$SCRIPTS/network.sh" down' EXIT
while [ "$(readlink /proc/$pod/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.05; done
ip link add vhost0 type veth peer name vpod0
ip link set vpod0 netns $pod
ip link set vhost0 master chefgenius-t0 up
in_pod() { nsenter -t $pod -n "$@"; }
in_pod ip link set lo up
in_pod ip addr add 10.77.1.2/16 dev vpod0
in_pod ip link set vpod0 up
in_pod ip route add default via 10.77.0.1
python3 -c 'import socket, time; s = socket.create_server(("10.77.0.1", 7443)); time.sleep(60)' & listener=$!
trap 'kill $pod $listener 2>/dev/null; "$SCRIPTS/network.sh" down' EXIT
while ! ss -ltn | grep -q 10.77.0.1:7443; do sleep 0.05; done
"$SCRIPTS/guard.sh" run bash -c 'for target in "10.77.0.1 7443" "10.96.0.1 443" "203.0.113.9 80"; do
  nsenter -t '$pod' -n python3 -c "$CONNECT" $target; done'
"""


def test_a_pod_reaches_the_host_and_nothing_is_forwarded_off_the_machine(tmp_path):
    result = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "bash", "-c", SCRIPT],
        env={
            **os.environ,
            "SCRIPTS": str(SCRIPTS),
            "CONNECT": CONNECT,
            "CLUSTER_STATE": str(tmp_path),
            "CLUSTER_POD_BRIDGE": "chefgenius-t0",
            "CLUSTER_POD_CIDR": "10.77.0.0/16",
            "CLUSTER_POD_GATEWAY": "10.77.0.1",
            "GUARD_REGISTRY_HOSTS": "",
            "CI": "",
        },
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "connected 10.77.0.1" in result.stdout, result.stdout + result.stderr
    assert "refused 10.96.0.1 No route to host" in result.stdout, result.stdout + result.stderr
    assert "refused 203.0.113.9 No route to host" in result.stdout, result.stdout + result.stderr
    assert "0 packets counted" in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
