# Versions of the cluster's own images, read by scripts/images/ (which builds them) and
# scripts/cluster/ (whose node runs them): the pause image of this Kubernetes release
# (k8s.io/kubernetes build/pause/Makefile's TAG) and the CoreDNS that kubeadm pins for it.
PAUSE_VERSION=3.10.1
COREDNS_VERSION=v1.13.1
