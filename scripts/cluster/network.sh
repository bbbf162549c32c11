#!/usr/bin/env bash
# The local cluster's own network: one Linux bridge that this script creates and removes.
#
#   network.sh up     create bridge $POD_BRIDGE with $POD_GATEWAY/$POD_PREFIX (idempotent)
#   network.sh down   delete it again, if this script made it
#
# Why a bridge: the API server reaches the operator's webhook through an EndpointSlice, and an
# endpoint may not be a loopback address. The webhook listens on the bridge's gateway address
# instead: an address of an interface the cluster made, delivered locally, so nothing goes to the
# machine's external interface (the network guard, guard.sh, rejects and counts that). The same
# bridge and range are the pod network a real node's CNI plugin attaches pods to.
# Pods on the bridge reach only the bridge and the host's own addresses: packets arriving on the
# bridge are routed by table $POD_ROUTE_TABLE (an `ip rule` on the bridge as input interface), which
# holds the pod range and an `unreachable` default. Without it the host forwards whatever a pod sends
# elsewhere out of the machine's interface: a pod's TCP reset to the kubernetes Service address, sent
# as its connection was torn down (conntrack no longer translates it), left for 10.96.0.1 that way.
# Service addresses are translated before this lookup, so Services keep working.
# kwok's made-up pod IPs come from $KWOK_POD_CIDR inside 127.0.0.0/8 (kwok --cidr), so a scrape of a
# kwok pod by the operator stays on loopback.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
marker=$STATE/run/network.bridge

up() {
  command -v ip >/dev/null || die "the cluster network needs iproute2 (apt-get install iproute2)"
  if ip link show "$POD_BRIDGE" >/dev/null 2>&1; then
    ip -o addr show dev "$POD_BRIDGE" | grep -q " $POD_GATEWAY/" ||
      die "bridge $POD_BRIDGE exists without $POD_GATEWAY: remove it (ip link del $POD_BRIDGE) or set CLUSTER_POD_BRIDGE"
  else
    [ "$(id -u)" -eq 0 ] || die "creating the cluster's bridge $POD_BRIDGE needs root"
    # The range must be ours alone: a route to it that leads anywhere else would be a leak.
    local conflict
    conflict=$(ip -o route show match "$POD_GATEWAY" | grep -v '^default' || true)
    [ -z "$conflict" ] || die "$POD_GATEWAY is already routed on this machine ($conflict): set CLUSTER_POD_CIDR/CLUSTER_POD_GATEWAY"
    ip link add "$POD_BRIDGE" type bridge
    ip addr add "$POD_GATEWAY/$POD_PREFIX" dev "$POD_BRIDGE"
    ip link set "$POD_BRIDGE" up
    mkdir -p "$(dirname "$marker")" && echo "$POD_BRIDGE" >"$marker"
  fi
  ip route replace "$POD_CIDR" dev "$POD_BRIDGE" table "$POD_ROUTE_TABLE"
  ip route replace unreachable default table "$POD_ROUTE_TABLE"
  ip rule show | grep -q "iif $POD_BRIDGE lookup $POD_ROUTE_TABLE" ||
    ip rule add iif "$POD_BRIDGE" lookup "$POD_ROUTE_TABLE" priority "$POD_ROUTE_TABLE"
  log "cluster network: bridge $POD_BRIDGE $POD_GATEWAY/$POD_PREFIX (webhook endpoint, pod network); kwok pod IPs from $KWOK_POD_CIDR"
}

down() {
  [ -f "$marker" ] || return 0
  while ip rule del lookup "$POD_ROUTE_TABLE" 2>/dev/null; do :; done
  ip route flush table "$POD_ROUTE_TABLE" 2>/dev/null || true
  ip link del "$(cat "$marker")" 2>/dev/null || true
  rm -f "$marker"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die "usage: network.sh up | down" ;;
esac
