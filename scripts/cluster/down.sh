#!/usr/bin/env bash
# `make cluster-down`: stop every process up.sh and operator.sh started (by the process groups
# recorded in .cluster/run/), operators first so none of them sees the API server vanish mid-write.
# Keeps .cluster/pki (the next `make cluster` writes kubeconfigs of the same CA) and the logs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -d "$RUN" ] || exit 0
operators=()
for pidfile in "$RUN"/*.pid; do
  [ -e "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  case $name in etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok | containerd | kubelet | kube-proxy) ;; *) operators+=("$name") ;; esac
done
# Each component takes about 2 s to stop gracefully: stop the independent ones together.
for name in "${operators[@]}"; do stop "$name" & done
wait
# The real node next, while the API server still answers (its pods are deleted through it).
"$CLUSTER_DIR/node.sh" down
for name in kwok kube-scheduler kube-controller-manager; do stop "$name" & done
wait
stop kube-apiserver
stop etcd
rm -f "$STATE/operator.token" "$RUN/operator.mode"
# The kubeconfigs name the API server at the bridge's address: once the bridge is gone that address
# routes off the machine, so a kubectl run after this would send its first packet there. Without
# them kubectl refuses on loopback; the next make cluster writes them again (same CA, same paths).
rm -f "$STATE"/*.kubeconfig "$STATE/kubeconfig"
"$CLUSTER_DIR/network.sh" down
if [ -f "$RUN/guard.owned" ]; then  # up.sh turned the guard on: report what it counted, then remove it
  rm -f "$RUN/guard.owned"
  status=0
  "$CLUSTER_DIR/guard.sh" check || status=$?
  "$CLUSTER_DIR/guard.sh" stop
  [ $status -eq 0 ] || { echo ">> cluster stopped; the network guard counted traffic (above)" >&2; exit $status; }
fi
echo ">> cluster stopped" >&2
