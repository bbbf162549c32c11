#!/usr/bin/env bash
# Print the storage of the local cluster as YAML: a default StorageClass `standard` with Immediate
# binding, and hostPath PersistentVolumes of that class (RWO and RWX) under .cluster/volumes/.
# The PV controller binds a claim to the smallest matching PV; when none is left it falls back to
# kube-controller-manager's in-tree hostPath provisioner (--enable-hostpath-provisioner; directories
# under /tmp/hostpath_pv, deleted with their claim). No kubelet mounts them: kwok pods never start.
# For the real node, a StorageClass `real-node` (bound when a pod is scheduled) and `local`
# PersistentVolumes on it (RWO and RWX: a gang's pods all run on that one node): the kubelet mounts
# them and applies the pod's fsGroup, as it does for a node's local disks.
# Usage: storage.sh RWO_COUNT RWX_COUNT [REAL_NODE_COUNT]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rwo=${1:?usage: storage.sh RWO_COUNT RWX_COUNT} rwx=${2:?usage: storage.sh RWO_COUNT RWX_COUNT}
cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
volumeBindingMode: Immediate
reclaimPolicy: Delete
YAML
pv() { # pv NAME MODE SIZE
  mkdir -p "$STATE/volumes/$1"
  cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $1
  labels: {chefgenius.io/local-cluster: "true", access-mode: $2}
spec:
  storageClassName: standard
  capacity: {storage: $3}
  accessModes: [$2]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $STATE/volumes/$1, type: DirectoryOrCreate}
YAML
}
real=${3:-0}
for i in $(seq -w 1 "$rwo"); do pv "pv-rwo-$i" ReadWriteOnce 100Gi; done
for i in $(seq -w 1 "$rwx"); do pv "pv-rwx-$i" ReadWriteMany 500Gi; done
[ "$real" -gt 0 ] || exit 0
cat <<YAML
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: $REAL_NODE_STORAGE_CLASS}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
for i in $(seq -w 1 "$real"); do
  name=pv-real-$i
  mkdir -p "$STATE/volumes/$name"
  cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {chefgenius.io/local-cluster: "true"}
spec:
  storageClassName: $REAL_NODE_STORAGE_CLASS
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  local: {path: $STATE/volumes/$name}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$REAL_NODE]}]
YAML
done
