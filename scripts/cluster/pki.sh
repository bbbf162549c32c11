#!/usr/bin/env bash
# Certificates and keys of the local control plane, made once with openssl under .cluster/pki:
#   ca            signs every certificate below; the API server trusts client certs it signed
#   apiserver     serving certificate for 127.0.0.1, the bridge's gateway and the in-cluster `kubernetes` names
#   sa            key pair that signs and verifies ServiceAccount tokens
#   admin, kube-controller-manager, kube-scheduler, kwok   client certificates (CN = user, O = group)
#   node, kube-proxy   the real node's kubelet (system:node:<name> in system:nodes) and kube-proxy
# Idempotent: existing files are kept, so restarting the cluster keeps kubeconfigs valid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$PKI"
cd "$PKI"
command -v openssl >/dev/null || die "openssl is needed for the cluster's certificates (apt-get install openssl)"
ossl() { openssl "$@" 2>/dev/null; }

if [ ! -f ca.crt ]; then
  ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=chef-genius-local-ca"
fi
[ -f sa.key ] || { ossl genrsa -out sa.key 2048; ossl rsa -in sa.key -pubout -out sa.pub; }

# cert NAME SUBJECT [EXTENSIONS]
cert() {
  local name=$1 subject=$2 ext=${3:-"extendedKeyUsage=clientAuth"}
  [ -f "$name.crt" ] && return 0
  ossl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$ext" >"$name.ext"
  ossl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$name.ext" -out "$name.crt"
  rm -f "$name.csr" "$name.ext"
}
apiserver_names="IP:127.0.0.1,IP:$APISERVER_ADDRESS,IP:$SERVICE_IP"
# A certificate from before a change of addresses is made again (the CA, and so every kubeconfig, stays).
if [ -f apiserver.crt ] && ! openssl x509 -in apiserver.crt -noout -ext subjectAltName 2>/dev/null |
  grep -q "IP Address:$APISERVER_ADDRESS"; then
  rm -f apiserver.crt apiserver.key
fi
cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=$apiserver_names,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert kube-controller-manager "/CN=system:kube-controller-manager"
cert kube-scheduler "/CN=system:kube-scheduler"
cert kwok "/CN=kwok-controller"
cert node "/O=system:nodes/CN=system:node:$REAL_NODE"
cert kube-proxy "/CN=system:kube-proxy"
# kube-controller-manager signs CSRs (certificates.k8s.io) with the cluster CA.
echo "$PKI"
