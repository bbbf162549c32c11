#!/usr/bin/env bash
# `make cluster`: a real Kubernetes control plane on this machine, a real worker node, kwok's fake
# GPU nodes, and the chart installed with the operator running from its image on the real node.
#
#   etcd, kube-apiserver (RBAC + Node authz, default admission incl. PodSecurity), kube-controller-manager
#   (Jobs, GC, namespaces, SA tokens, PV binding), kube-scheduler: one binary, chef-k8s (build.sh)
#   kwok: fake GPU nodes and pod lifecycles (kwok/stages.yaml, incl. the chaos stage that fails pods);
#         their pods get loopback IPs ($KWOK_POD_CIDR), so nothing that talks to one leaves the machine
#   network.sh: the cluster's own bridge; its gateway address is the API server's, the real node's and
#         the webhook's address, and the real node's pods attach to it
#   guard.sh: the network guard (nftables counters), on from here until down.sh, unless it was on already
#   node.sh: the real node $REAL_NODE (containerd, runc, CNI, kubelet, kube-proxy) running the images
#         built from our Dockerfiles (scripts/images/), and CoreDNS on it
#   helm install of charts/recipe-training-operator (CRD through the chart) into recipe-training, and
#   the operator: CLUSTER_OPERATOR=in-cluster (default) runs the chart's Deployment on the real node;
#   CLUSTER_OPERATOR=local runs recipe-operator (the real console script) as a local process with the
#   Deployment's environment and ServiceAccount (operator.sh), which tests can start, kill and restart
#
# Writes .cluster/kubeconfig (admin) and .cluster/operator.kubeconfig (the operator's SA token).
# A fresh etcd every time: each `make cluster` starts from an empty cluster. Stop with down.sh.
# Settings: CLUSTER_OPERATOR (in-cluster | local), CLUSTER_GPU_NODES (2), CLUSTER_RWO_PVS (48),
# CLUSTER_RWX_PVS (8), CLUSTER_REAL_PVS (8, local volumes on the real node), CLUSTER_HELM_ARGS.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
GPU_NODES=${CLUSTER_GPU_NODES:-2}
RWO_PVS=${CLUSTER_RWO_PVS:-48}
RWX_PVS=${CLUSTER_RWX_PVS:-8}
REAL_PVS=${CLUSTER_REAL_PVS:-8}
OPERATOR_MODE=${CLUSTER_OPERATOR:-in-cluster}
case $OPERATOR_MODE in in-cluster | local) ;; *) die "CLUSTER_OPERATOR is in-cluster or local, not $OPERATOR_MODE" ;; esac
t0=$SECONDS

if [ -d "$RUN" ] && compgen -G "$RUN/*.pid" >/dev/null; then
  for pidfile in "$RUN"/*.pid; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null && die "a cluster is already running (.cluster/run/$(basename "$pidfile")); run make cluster-down first"
  done
fi
for port in $ETCD_PORT $ETCD_PEER_PORT $APISERVER_PORT $KCM_PORT $SCHEDULER_PORT $KWOK_PORT \
  $OPERATOR_HEALTH_PORT $OPERATOR_METRICS_PORT $OPERATOR_WEBHOOK_PORT $KUBELET_HEALTHZ_PORT \
  $KUBE_PROXY_METRICS_PORT $KUBE_PROXY_HEALTHZ_PORT; do
  port_free "$port" || die "port 127.0.0.1:$port is taken (another cluster? set CLUSTER_*_PORT or stop it)"
done

bin=$("$CLUSTER_DIR/build.sh" | tail -1)
"$ROOT/scripts/images/build.sh" >/dev/null  # the node's images (cached by content hash)
k8s=$bin/chef-k8s
[ -x "$KUBECTL" ] || "$CLUSTER_DIR/install-kubectl.sh"
[ -x "$HELM" ] || bash "$ROOT/scripts/install-tools.sh"
[ -x "$VENV_BIN/recipe-operator" ] || die "no $VENV_BIN/recipe-operator: run make venv first"
"$CLUSTER_DIR/pki.sh" >/dev/null
# Anything that fails from here on must not leave half a cluster running.
trap 'status=$?; [ $status -eq 0 ] || { echo "cluster: start failed; logs in $LOGS" >&2; "$CLUSTER_DIR/down.sh" >&2; }' EXIT

# The guard first, so it sees every packet of this cluster; down.sh checks and removes it. Under
# `make test` it is already on (guard.sh run) and stays the caller's.
if ! "$CLUSTER_DIR/guard.sh" on; then
  "$CLUSTER_DIR/guard.sh" start && mkdir -p "$RUN" && touch "$RUN/guard.owned"
fi
"$CLUSTER_DIR/network.sh" up

rm -rf "$STATE/etcd" "$STATE/volumes" "$STATE/operator.token" "$LOGS" && mkdir -p "$STATE/etcd" "$LOGS" "$RUN"
export KUBECONFIG=$STATE/kubeconfig
kubeconfig admin "$PKI/admin.crt" "$PKI/admin.key" >"$STATE/kubeconfig"
for who in kube-controller-manager kube-scheduler kwok; do
  kubeconfig "$who" "$PKI/$who.crt" "$PKI/$who.key" >"$STATE/$who.kubeconfig"
done

log "etcd on 127.0.0.1:$ETCD_PORT"
start etcd "$k8s" etcd --name local --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

log "kube-apiserver on $APISERVER_URL"
start kube-apiserver "$k8s" kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address "$APISERVER_ADDRESS" --advertise-address "$APISERVER_ADDRESS" --secure-port "$APISERVER_PORT" \
  --kubelet-preferred-address-types InternalIP \
  --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
  --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --enable-aggregator-routing \
  --profiling=false --v 1
wait_for kube-apiserver 120 curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  "$APISERVER_URL/readyz"

log "kube-controller-manager and kube-scheduler"
start kube-controller-manager "$k8s" kube-controller-manager \
  --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$STATE/kcm-certs" \
  --leader-elect=false --use-service-account-credentials \
  --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --controllers '*,-cloud-node-lifecycle-controller,-node-ipam-controller,-node-route-controller,-service-lb-controller' \
  --enable-hostpath-provisioner --profiling=false --v 1
start kube-scheduler "$k8s" kube-scheduler \
  --kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$STATE/scheduler-certs" \
  --leader-elect=false --profiling=false --v 1

"$KUBECTL" apply -f "$CLUSTER_DIR/manifests/kwok-rbac.yaml" >/dev/null
log "kwok (stages: $CLUSTER_DIR/kwok/stages.yaml)"
start kwok "$bin/kwok" --kubeconfig "$STATE/kwok.kubeconfig" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds 40 --server-address "127.0.0.1:$KWOK_PORT" \
  --cidr "$KWOK_POD_CIDR" --node-ip "$KWOK_NODE_IP" \
  --config "$CLUSTER_DIR/kwok/stages.yaml"
wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_for kwok 60 curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"

log "$GPU_NODES GPU nodes, $RWO_PVS ReadWriteOnce + $RWX_PVS ReadWriteMany PersistentVolumes"
for i in $(seq 0 $((GPU_NODES - 1))); do
  sed "s/\${NAME}/gpu-node-$i/g" "$CLUSTER_DIR/manifests/gpu-node.yaml.tmpl"; echo "---"
done | "$KUBECTL" apply -f - >/dev/null
"$CLUSTER_DIR/storage.sh" "$RWO_PVS" "$RWX_PVS" "$REAL_PVS" | "$KUBECTL" apply -f - >/dev/null
wait_for "kwok nodes Ready" 60 "$KUBECTL" wait --for=condition=Ready node --all --timeout=1s
wait_for "the default ServiceAccount" 60 "$KUBECTL" get serviceaccount default -n default

log "real node $REAL_NODE"
"$CLUSTER_DIR/node.sh" up "$bin"

log "helm install $RELEASE (charts/recipe-training-operator) into $OPERATOR_NAMESPACE, operator $OPERATOR_MODE"
echo "$OPERATOR_MODE" >"$RUN/operator.mode"
"$CLUSTER_DIR/chart.sh" >"$LOGS/helm.log"
if [ "$OPERATOR_MODE" = local ]; then
  "$CLUSTER_DIR/operator.sh" start operator
fi
log "cluster ready in $((SECONDS - t0)) s: export KUBECONFIG=$STATE/kubeconfig"
