"""The network guard (scripts/cluster/guard.sh) counts what it must and only that.

`make test` runs under the guard, and its verdict is what proves that the tests and the cluster sent
nothing off this machine; a guard that counted nothing because its rules matched nothing would prove
nothing. Each test runs the real script with the real nft in a network namespace of its own
(`unshare -n`): nftables tables are per namespace, so the outer guard of `make test` never sees these
packets, and the namespace's "external" interface is a bridge without ports, so nothing can leave.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from network_namespaces import requirements

GUARD = Path(__file__).resolve().parents[2] / "scripts" / "cluster" / "guard.sh"

pytestmark = requirements("the network guard's tests")

# A namespace shaped like this machine: loopback, one "external" interface (a bridge
# with no ports: nothing sent there goes anywhere) with the default route.
NAMESPACE_SETUP = """
set -e
ip link set lo up
ip link add ext0 type bridge
ip addr add 192.0.2.50/24 dev ext0
ip link set ext0 up
ip route add default via 192.0.2.1 dev ext0
"""

CONNECT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=2).close()
except OSError as exc:
    print("connect:", exc)
"""


def guarded(*targets: tuple[str, int]) -> subprocess.CompletedProcess:
    """`guard.sh run` around connection attempts to each target, inside a fresh namespace."""
    connects = " && ".join(f"python3 -c '{CONNECT}' {host} {port}" for host, port in targets) or "true"
    script = NAMESPACE_SETUP + f'"{GUARD}" run bash -c "$CONNECTS"'
    return subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        env={**os.environ, "CONNECTS": connects, "GUARD_REGISTRY_HOSTS": "", "CI": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_loopback_traffic_passes_the_guard():
    result = guarded(("127.0.0.1", 9), ("127.88.0.5", 9090))
    assert result.returncode == 0, result.stderr
    assert "0 packets counted" in result.stderr


def test_a_connection_to_a_made_up_pod_ip_is_counted_and_fails_the_run():
    """kwok's old default pod range: what the operator's scrapes used to reach."""
    result = guarded(("10.0.0.7", 9090))
    assert result.returncode == 1, result.stderr
    assert "COUNTED 1 packet(s) on 'leaked'" in result.stderr
    assert "Connection refused" in result.stdout  # rejected at once, not left to time out


def test_the_machines_own_external_address_is_counted():
    result = guarded(("192.0.2.50", 29443))
    assert result.returncode == 1, result.stderr
    assert "COUNTED 1 packet(s) on 'external_address'" in result.stderr


def test_the_guard_removes_its_table_when_the_run_ends():
    script = NAMESPACE_SETUP + f'"{GUARD}" run true && ! nft list table inet chefgenius_guard 2>/dev/null'
    result = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        env={**os.environ, "GUARD_REGISTRY_HOSTS": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
