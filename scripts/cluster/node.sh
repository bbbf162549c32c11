#!/usr/bin/env bash
# The local cluster's real worker node: containerd + runc + CNI plugins (Debian's packages), and the
# kubelet and kube-proxy of the control plane's own Kubernetes build (chef-k8s).
#
#   node.sh up BIN_DIR    start containerd, import the images (.images/), start kubelet and kube-proxy,
#                         wait for the node to be Ready, then deploy CoreDNS onto it
#   node.sh down          delete its pods, stop everything, and undo every change it made to the host
#
# Node $REAL_NODE, labelled and tainted $REAL_NODE_LABEL=true, no GPU. Its pods attach to the cluster's
# bridge ($POD_BRIDGE, network.sh) with addresses from $POD_CIDR and no masquerading: a pod reaches
# the host's bridge address (the API server, the webhook) and other pods, nothing else (guard.sh
# drops forwarded packets to the external interface). Everything it writes lives under
# $STATE/node, except what the kernel or the programs fix elsewhere (cgroups, iptables chains,
# sysctls, shim sockets); `down` removes or restores each of those. The images' content is kept
# in the cache ($NODE_CACHE), so a warm `make cluster` imports nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
NODE=$STATE/node
NODE_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/node
CONTAINERD_SOCK=$NODE/containerd.sock
CTR=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
# The host settings the kubelet and the bridge plugin change; saved at `up`, restored at `down`.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables)

containerd_config() {
  cat <<TOML
version = 2
root = "$NODE_CACHE/containerd"
state = "$NODE/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$NODE/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:$PAUSE_VERSION"
  # Without CAP_SYS_RESOURCE (this VM) a negative oom_score_adj fails every sandbox start.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
TOML
}

cni_config() {
  cat <<JSON
{
  "cniVersion": "1.0.0",
  "name": "chefgenius",
  "plugins": [
    {
      "type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY", "rangeStart": "$NODE_POD_RANGE_START"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
}

kubelet_config() {
  cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this kernel: kubelet 1.35 refuses it unless told, and containerd uses cgroupfs.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
podLogsDir: $NODE/pod-logs
staticPodPath: ""
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: $NODE/resolv.conf
failSwapOn: false
protectKernelDefaults: false
# The imported images are all there is (no registry): never garbage-collect them, and never call
# the disk full because they take space. Memory pressure still evicts, as on any node.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
maxPods: 30
YAML
}

save_sysctls() {
  local name
  [ -f "$NODE/sysctls.saved" ] && return 0
  for name in "${SYSCTLS[@]}"; do
    echo "$name=$(sysctl -n "$name" 2>/dev/null || echo unset)"
  done >"$NODE/sysctls.saved"
}

restore_sysctls() {
  local line
  [ -f "$NODE/sysctls.saved" ] || return 0
  while IFS= read -r line; do
    [ "${line#*=}" = unset ] || sysctl -q -w "$line" >/dev/null 2>&1 || true
  done <"$NODE/sysctls.saved"
  rm -f "$NODE/sysctls.saved"
}

# import_images: every archive of .images/ into containerd, unless the same archive (by its
# content-hash name) was imported before into the cached content store.
import_images() {
  local name ref archive marker
  while read -r name ref archive; do
    marker=$NODE_CACHE/imported/$name
    if [ "$(cat "$marker" 2>/dev/null)" = "$archive" ] && "${CTR[@]}" images ls -q | grep -qxF "$ref"; then
      continue
    fi
    log "importing $ref into the node's containerd ($(du -h "$archive" | cut -f1))"
    "${CTR[@]}" images import --all-platforms "$archive" >/dev/null
    mkdir -p "$(dirname "$marker")" && echo "$archive" >"$marker"
  done < <("$ROOT/scripts/images/build.sh")
}

up() {
  local bin=${1:?usage: node.sh up BIN_DIR}
  for tool in containerd runc ctr iptables; do
    command -v "$tool" >/dev/null || die "the real node needs $tool (scripts/install-tools.sh installs it)"
  done
  [ -x /usr/lib/cni/bridge ] || die "the real node needs the CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
  [ "$(id -u)" -eq 0 ] || die "the real node (containerd, kubelet) needs root"
  mkdir -p "$NODE/cni" "$NODE/ipam" "$NODE/pod-logs" "$NODE/runc" "$NODE_CACHE"
  echo "$bin/chef-k8s" >"$NODE/chef-k8s.path"  # for down's kube-proxy --cleanup
  save_sysctls
  # Pod-to-service traffic is bridged back to a pod on the same bridge: iptables must see it.
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1
  containerd_config >"$NODE/containerd.toml"
  cni_config >"$NODE/cni/10-chefgenius.conflist"
  echo "nameserver 127.0.0.1" >"$NODE/resolv.conf"  # no upstream DNS: pods resolve cluster names only
  kubelet_config >"$NODE/kubelet.yaml"
  kubeconfig "system:node:$REAL_NODE" "$PKI/node.crt" "$PKI/node.key" >"$NODE/kubelet.kubeconfig"
  kubeconfig system:kube-proxy "$PKI/kube-proxy.crt" "$PKI/kube-proxy.key" >"$NODE/kube-proxy.kubeconfig"

  log "containerd (state $NODE, images in $NODE_CACHE/containerd)"
  start containerd containerd --config "$NODE/containerd.toml"
  wait_for containerd 60 "${CTR[@]}" version
  import_images

  log "kubelet and kube-proxy of node $REAL_NODE ($NODE_IP)"
  start kubelet "$bin/chef-k8s" kubelet --config "$NODE/kubelet.yaml" \
    --kubeconfig "$NODE/kubelet.kubeconfig" --root-dir "$NODE/kubelet" --cert-dir "$NODE/kubelet-pki" \
    --hostname-override "$REAL_NODE" --node-ip "$NODE_IP" \
    --node-labels "$REAL_NODE_LABEL=true" \
    --register-with-taints "$REAL_NODE_LABEL=true:NoSchedule" --v 1
  start kube-proxy "$bin/chef-k8s" kube-proxy --kubeconfig "$NODE/kube-proxy.kubeconfig" \
    --hostname-override "$REAL_NODE" --proxy-mode iptables --cluster-cidr "$POD_CIDR" --oom-score-adj=0 \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
    --metrics-bind-address "127.0.0.1:$KUBE_PROXY_METRICS_PORT" --healthz-bind-address "127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT" \
    --v 1
  wait_for "node $REAL_NODE Ready" 120 "$KUBECTL" wait --for=condition=Ready "node/$REAL_NODE" --timeout=1s
  wait_for kube-proxy 60 curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"

  log "CoreDNS on $REAL_NODE (Service $CLUSTER_DNS_IP)"
  sed -e "s/\${CLUSTER_DNS_IP}/$CLUSTER_DNS_IP/g" -e "s/\${COREDNS_VERSION}/$COREDNS_VERSION/g" \
    -e "s#\${REAL_NODE_LABEL}#$REAL_NODE_LABEL#g" \
    "$CLUSTER_DIR/manifests/coredns.yaml" | "$KUBECTL" apply -f - >/dev/null
  wait_for "CoreDNS" 120 "$KUBECTL" -n kube-system rollout status deployment/coredns --timeout=1s
}

# Teardown, in the order that leaves the host clean: pods go while the kubelet still runs (so it
# stops their containers and releases their addresses), then the node's programs, then what they
# left in the kernel.
down() {
  [ -d "$NODE" ] || return 0
  if alive kubelet && [ -f "$STATE/kubeconfig" ] && alive kube-apiserver; then
    KUBECONFIG=$STATE/kubeconfig "$KUBECTL" delete pods -A --field-selector "spec.nodeName=$REAL_NODE" \
      --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 || true
  fi
  stop kube-proxy
  stop kubelet
  local id leftover=()
  if alive containerd; then  # whatever the kubelet left: stop it through containerd itself
    mapfile -t leftover < <("${CTR[@]}" containers ls -q 2>/dev/null)
    for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
  local bin
  bin=$(cat "$NODE/chef-k8s.path" 2>/dev/null || true)
  [ ! -x "$bin" ] || "$bin" kube-proxy --cleanup >/dev/null 2>&1 || true
  # The kubelet's own chains (its firewall and canaries), in every table it uses.
  local table chain
  for table in filter nat mangle; do
    for chain in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[A-Z0-9-]*\)$/\1/p'); do
      { iptables -t "$table" -S 2>/dev/null | grep -E "^-A [A-Z]+ (.* )?-j $chain( |$)" || true; } | sed 's/^-A/-D/' |
        while read -r rule; do eval "iptables -t $table $rule" 2>/dev/null || true; done
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  # Mounts under the node's directories (netns, volumes, overlay snapshots), deepest first.
  local mount
  for mount in $(awk '{print $2}' /proc/mounts | grep -E "^($NODE|$NODE_CACHE)/" | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  # The pods' cgroups in every v1 hierarchy (kubepods and its children, deepest first).
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -d "$hierarchy/kubepods" ] || [ -d "$hierarchy/kubepods.slice" ] || continue
    find "$hierarchy"kubepods* -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # CNI's cached results of sandboxes that never got their DEL (pods the kubelet could not delete).
  for id in "${leftover[@]}"; do rm -f /var/lib/cni/results/*-"$id"-*; done
  restore_sysctls
  rm -rf "$NODE/kubelet" "$NODE/containerd-state" "$NODE/runc" "$NODE/ipam" 2>/dev/null || true
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  *) die "usage: node.sh up BIN_DIR | down" ;;
esac
