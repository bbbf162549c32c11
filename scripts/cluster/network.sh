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
  log "cluster network: bridge $POD_BRIDGE $POD_GATEWAY/$POD_PREFIX (webhook endpoint, pod network); kwok pod IPs from $KWOK_POD_CIDR"
}

down() {
  [ -f "$marker" ] || return 0
  ip link del "$(cat "$marker")" 2>/dev/null || true
  rm -f "$marker"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die "usage: network.sh up | down" ;;
esac
