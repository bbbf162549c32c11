# Versions of the cluster's own images, read by scripts/images/ (which builds them) and
# scripts/cluster/ (whose node runs them): the pause image of this Kubernetes release
# (k8s.io/kubernetes build/pause/Makefile's TAG) and the CoreDNS release kubeadm pins for it, which
# scripts/images/coredns/go.mod requires (the one place it is written).
PAUSE_VERSION=3.10.1
COREDNS_VERSION=$(sed -n 's/^require github.com\/coredns\/coredns \(v[^ ]*\)$/\1/p' "$ROOT/scripts/images/coredns/go.mod")
