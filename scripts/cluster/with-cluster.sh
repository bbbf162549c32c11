#!/usr/bin/env bash
# Run one command against a fresh local cluster (up.sh) and stop the cluster afterwards, whatever
# happens (success, failure, Ctrl-C): `make test` uses it so no control-plane process outlives it.
# The run ends with the network guard's check (guard.sh): a packet to an address outside 127.0.0.0/8
# and the cluster's own networks fails it, whatever the command's own result.
# The command sees KUBECONFIG (admin), RECIPE_E2E_INSTALLED_OPERATOR=1 (the chart's operator runs)
# and RECIPE_E2E_LOCAL_CLUSTER=1 (tests/e2e may use kwok and operator.sh; see tests/local_cluster.py).
# The operator runs as a local process (CLUSTER_OPERATOR=local) so scenarios can kill, restart and
# reconfigure it, and reach kwok's loopback pod addresses; the scenario that runs the chart's operator
# from its image on the real node switches to it and back (tests/e2e/test_real_node.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || die "usage: with-cluster.sh COMMAND [ARGS...]"
trap 'status=$?; "$CLUSTER_DIR/down.sh" || status=1; exit $status' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
CLUSTER_OPERATOR=${CLUSTER_OPERATOR:-local} "$CLUSTER_DIR/up.sh"
# In the background and waited for: bash runs a trap only once its foreground command ends, so a
# SIGTERM (a CI timeout) would otherwise wait for the whole test run before stopping the cluster.
KUBECONFIG=$STATE/kubeconfig RECIPE_E2E_INSTALLED_OPERATOR=1 RECIPE_E2E_LOCAL_CLUSTER=1 "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 130' INT
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
status=0
wait $child || status=$?
"$CLUSTER_DIR/guard.sh" check || status=1
exit $status
