#!/usr/bin/env bash
# Run the real `recipe-operator` console script as a local process in place of the chart's pod:
# the environment, arguments, mounted Secrets and ServiceAccount of the chart's Deployment
# (operator_pod.py reads them), with a token from the TokenRequest API in .cluster/operator.kubeconfig,
# so every API call is checked by RBAC exactly as in a cluster. Only the ports differ (several
# operators share this machine); the webhook Service routes to the process (operator_pod.py route).
#
#   operator.sh start NAME [VAR=value...]   start one operator process (VAR=value overrides env)
#   operator.sh stop NAME [SIGNAL]          stop it (TERM, or KILL for a crash)
# Logs: .cluster/logs/NAME.log; PID: .cluster/run/NAME.pid (down.sh stops every one of them);
# its final RECIPE_OPERATOR_* environment, ports included: .cluster/run/NAME.env.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=$STATE/kubeconfig KUBECTL STATE OPERATOR_NAMESPACE RELEASE
usage="usage: operator.sh start NAME [VAR=value...] | stop NAME [SIGNAL]"
command=${1:?$usage} name=${2:?$usage}
shift 2

if [ "$command" = stop ]; then
  python3 "$CLUSTER_DIR/operator_pod.py" unroute "$name"
  stop "$name" "${1:-TERM}"
  exit 0
fi
[ "$command" = start ] || die "$usage"
alive "$name" && die "operator $name is already running (pid $(cat "$RUN/$name.pid"))"

env_vars=() args=() sa=default
while IFS= read -r line; do
  case $line in
    "SA "*) sa=${line#SA } ;;
    "ENV "*) env_vars+=("${line#ENV }") ;;
    "ARG "*) args+=("${line#ARG }") ;;
  esac
done < <(python3 "$CLUSTER_DIR/operator_pod.py" spec)

token_file=$STATE/operator.token
if [ ! -s "$token_file" ]; then
  "$KUBECTL" create token "$sa" -n "$OPERATOR_NAMESPACE" --duration 48h >"$token_file"
  kubeconfig "system:serviceaccount:$OPERATOR_NAMESPACE:$sa" "" "" "$(cat "$token_file")" \
    >"$STATE/operator.kubeconfig"
fi

# This instance's ports: the first operator gets the fixed ones, later ones pass their own.
env_vars+=(
  "RECIPE_OPERATOR_HEALTH_PORT=$OPERATOR_HEALTH_PORT"
  "RECIPE_OPERATOR_METRICS_PORT=$OPERATOR_METRICS_PORT"
  "RECIPE_OPERATOR_WEBHOOK_PORT=$OPERATOR_WEBHOOK_PORT"
  "RECIPE_OPERATOR_WEBHOOK_ADDRESS=$WEBHOOK_ADDRESS"
  "$@"
)
declare -A final=()
for var in "${env_vars[@]}"; do final[${var%%=*}]=${var#*=}; done
health_port=${final[RECIPE_OPERATOR_HEALTH_PORT]}
# What this instance runs with (ports included), for tests and for a person debugging it.
for key in "${!final[@]}"; do echo "$key=${final[$key]}"; done | sort >"$RUN/$name.env"
port_free "$health_port" || die "port 127.0.0.1:$health_port is taken: pass RECIPE_OPERATOR_HEALTH_PORT=... to operator.sh"

# A clean environment, as in a container: nothing from the caller's shell leaks in.
start "$name" env -i PATH="$VENV_BIN:/usr/local/bin:/usr/bin:/bin" HOME="$STATE" LANG=C.UTF-8 \
  PYTHONUNBUFFERED=1 KUBECONFIG="$STATE/operator.kubeconfig" "${env_vars[@]}" \
  "$VENV_BIN/recipe-operator" "${args[@]}"
wait_for "operator $name (/healthz on $health_port; log $LOGS/$name.log)" 90 \
  curl -fsS "http://127.0.0.1:$health_port/healthz"
if [ "${final[RECIPE_OPERATOR_WEBHOOK_ENABLED]:-false}" = true ]; then
  python3 "$CLUSTER_DIR/operator_pod.py" route "$name" "${final[RECIPE_OPERATOR_WEBHOOK_PORT]}" "$WEBHOOK_ADDRESS"
fi
log "operator $name running as system:serviceaccount:$OPERATOR_NAMESPACE:$sa (log: $LOGS/$name.log)"
