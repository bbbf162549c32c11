# Shared settings of the local control plane (sourced by up.sh, down.sh, operator.sh).
# Everything it starts lives on 127.0.0.1 and writes only under $STATE (.cluster/).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER_DIR=$ROOT/scripts/cluster
STATE=${CLUSTER_STATE:-$ROOT/.cluster}
PKI=$STATE/pki
RUN=$STATE/run            # <name>.pid files of every process we started
LOGS=$STATE/logs
KUBECTL=${KUBECTL:-$ROOT/.tools/bin/kubectl}
HELM=${HELM:-$ROOT/.tools/bin/helm}
VENV_BIN=${VENV_BIN:-$ROOT/.venv/bin}

# Fixed high loopback ports: a second cluster on the same machine fails loudly, never half-starts.
ETCD_PORT=${CLUSTER_ETCD_PORT:-22379}
ETCD_PEER_PORT=${CLUSTER_ETCD_PEER_PORT:-22380}
APISERVER_PORT=${CLUSTER_APISERVER_PORT:-26443}
KCM_PORT=${CLUSTER_KCM_PORT:-20257}
SCHEDULER_PORT=${CLUSTER_SCHEDULER_PORT:-20259}
KWOK_PORT=${CLUSTER_KWOK_PORT:-20247}
# The chart-installed operator process: kopf's /healthz, the operator's /metrics, the webhook.
OPERATOR_HEALTH_PORT=${CLUSTER_OPERATOR_HEALTH_PORT:-28081}
OPERATOR_METRICS_PORT=${CLUSTER_OPERATOR_METRICS_PORT:-28080}
OPERATOR_WEBHOOK_PORT=${CLUSTER_OPERATOR_WEBHOOK_PORT:-29443}

SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1      # the `kubernetes` Service's ClusterIP, in the serving certificate
RELEASE=${CLUSTER_RELEASE:-recipe-training-operator}
OPERATOR_NAMESPACE=${CLUSTER_OPERATOR_NAMESPACE:-recipe-training}
# The cluster's own network (network.sh): a bridge whose gateway address is the webhook's endpoint
# (endpoints may not be loopback) and the pod network of a real node. kwok's made-up pod IPs are
# loopback addresses, so the operator's scrape of a kwok pod never leaves the machine (guard.sh).
POD_BRIDGE=${CLUSTER_POD_BRIDGE:-chefgenius0}
POD_CIDR=${CLUSTER_POD_CIDR:-10.88.0.0/16}
POD_PREFIX=${POD_CIDR#*/}
POD_ROUTE_TABLE=${CLUSTER_POD_ROUTE_TABLE:-2888}  # routing table (and rule priority) for packets from pods (network.sh)
POD_GATEWAY=${CLUSTER_POD_GATEWAY:-10.88.0.1}
KWOK_POD_CIDR=${CLUSTER_KWOK_POD_CIDR:-127.88.0.1/16}
KWOK_NODE_IP=127.0.0.1
WEBHOOK_ADDRESS=$POD_GATEWAY
APISERVER_URL=https://$POD_GATEWAY:$APISERVER_PORT
# The API server listens on the bridge's gateway address too: pods reach it there, through the
# `kubernetes` Service (kube-proxy), as in any cluster. Host-side clients use the same address.
APISERVER_ADDRESS=$POD_GATEWAY
# The real node (node.sh): its name, its address (the bridge's gateway: a node IP may not be
# loopback), its ports, the addresses its pods get, and the cluster DNS Service.
REAL_NODE=${CLUSTER_REAL_NODE:-chef-node}
NODE_IP=$POD_GATEWAY
NODE_POD_RANGE_START=${CLUSTER_NODE_POD_RANGE_START:-10.88.1.1}
KUBELET_PORT=${CLUSTER_KUBELET_PORT:-20250}
KUBELET_HEALTHZ_PORT=${CLUSTER_KUBELET_HEALTHZ_PORT:-20248}
KUBE_PROXY_METRICS_PORT=${CLUSTER_KUBE_PROXY_METRICS_PORT:-20249}
KUBE_PROXY_HEALTHZ_PORT=${CLUSTER_KUBE_PROXY_HEALTHZ_PORT:-20256}
CLUSTER_DNS_IP=10.96.0.10
REAL_NODE_STORAGE_CLASS=real-node
# The real node's label and NoSchedule taint (value "true"): what a pod meant for it selects and tolerates.
REAL_NODE_LABEL=chefgenius.io/real-node
source "$ROOT/scripts/images/versions.sh"

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo ">> $*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CMD...: run CMD in its own process group (setsid), log to $LOGS/NAME.log,
# record its PID (= process group id) in $RUN/NAME.pid. down.sh stops every group recorded.
start() {
  local name=$1; shift
  mkdir -p "$RUN" "$LOGS"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# stop NAME [SIGNAL]: signal NAME's process group, wait up to 10 s, then SIGKILL what is left.
stop() {
  local name=$1 signal=${2:-TERM} pidfile=$RUN/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" -- "-$pid" 2>/dev/null || kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$RUN/$name.env"
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_for WHAT SECONDS CMD...: poll CMD every 0.5 s; on timeout name WHAT and its log.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${seconds}s (see $LOGS/)"
    sleep 0.5
  done
}

kubeconfig() { # kubeconfig USER CERT KEY [TOKEN]: a kubeconfig for one identity, to stdout
  local user=$1 cert=$2 key=$3 token=${4:-}
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: chef-genius-local
  cluster:
    server: $APISERVER_URL
    certificate-authority: $PKI/ca.crt
contexts:
- name: $user@chef-genius-local
  context: {cluster: chef-genius-local, user: $user}
current-context: $user@chef-genius-local
users:
- name: $user
  user:
KC
  if [ -n "$token" ]; then
    echo "    token: $token"
  else
    echo "    client-certificate: $cert"
    echo "    client-key: $key"
  fi
}
