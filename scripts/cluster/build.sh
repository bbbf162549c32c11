#!/usr/bin/env bash
# Build, or reuse from the cache, the binaries of the local control plane:
#   chef-k8s  etcd + kube-apiserver + kube-controller-manager + kube-scheduler (chef-k8s/ module)
#   kwok      nodes and pod lifecycles without kubelets (sigs.k8s.io/kwok, `go install`)
# They live outside the repository, keyed by version and by a hash of the wrapper's go.mod, go.sum
# and main.go, so a warm machine never rebuilds and a changed module never reuses a stale binary.
# Prints the directory that holds both binaries on its last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod_dir=$here/chef-k8s
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$go" ] || { echo "cluster build: no Go toolchain (install Go >= 1.25 or set GO=/path/to/go)" >&2; exit 1; }
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}

k8s_version=$(sed -n 's/^require k8s.io\/kubernetes \(v[^ ]*\)$/\1/p;s/^[[:space:]]*k8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$mod_dir/go.mod" | head -1)
[ -n "$k8s_version" ] || { echo "cluster build: no k8s.io/kubernetes version in $mod_dir/go.mod (run gen-go-mod.sh)" >&2; exit 1; }
key=$k8s_version-$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$mod_dir/main.go" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/k8s/$key
mkdir -p "$cache"
# One build at a time (make test builds in the background while a `make cluster` may start): the
# second waits for the first, then finds its binaries.
exec 9>"$cache/.lock"
flock 9

# `go build -v` names each package it compiles: show a line every 100 (a cold build compiles
# about 2,500 and takes many minutes) and pass everything else (errors, downloads) through.
progress() {
  awk '/^[A-Za-z0-9._~\/-]+$/ { if (++n % 100 == 0) printf "   %d packages compiled (%s)\n", n, $0; next } { print }' >&2
}

if [ ! -x "$cache/chef-k8s" ]; then
  echo ">> building chef-k8s $k8s_version into $cache (cold build: tens of minutes on 2 cores)" >&2
  # /version must report the real release: helm checks charts' kubeVersion against it.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    minor=${k8s_version#v1.}; minor=${minor%%.*}
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$mod_dir" && "$go" build -v -trimpath -buildvcs=false -ldflags "$ldflags" -o "$cache/chef-k8s.tmp.$$" . 2>&1) |
    progress
  mv "$cache/chef-k8s.tmp.$$" "$cache/chef-k8s"  # atomic: a concurrent build never sees half a binary
fi

kwok_dir=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/kwok/$KWOK_VERSION
if [ ! -x "$kwok_dir/kwok" ]; then
  echo ">> building kwok $KWOK_VERSION into $kwok_dir" >&2
  mkdir -p "$kwok_dir"
  tmp=$(mktemp -d "$kwok_dir/.build.XXXXXX")
  GOBIN=$tmp "$go" install -v -trimpath "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" 2>&1 | progress
  mv "$tmp/kwok" "$kwok_dir/kwok" && rmdir "$tmp"
fi
ln -sf "$kwok_dir/kwok" "$cache/kwok"
echo "$cache"
