#!/usr/bin/env bash
# `make cluster-down`: stop every process up.sh and operator.sh started (by the process groups
# recorded in .cluster/run/), operators first so none of them sees the API server vanish mid-write.
# Keeps .cluster/pki (so kubeconfigs stay valid for the next `make cluster`) and the logs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -d "$RUN" ] || exit 0
order=()
for pidfile in "$RUN"/*.pid; do
  [ -e "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  case $name in etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok) ;; *) order+=("$name") ;; esac
done
order+=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
for name in "${order[@]}"; do stop "$name"; done
rm -f "$STATE/operator.token"
echo ">> cluster stopped" >&2
