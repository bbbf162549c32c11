#!/usr/bin/env bash
# The suites `make test` runs (under the network guard): the unit tests, then the e2e scenarios on a
# local cluster (with-cluster.sh).
#
# The cluster's binaries and images (cluster/build.sh, images/build.sh) build in the background,
# at low priority, while the unit tests run: on a machine with an empty cache that is a Go build of
# the control plane and the trainer image's CUDA kernels, most of a cold run, which would otherwise
# only start once the unit tests end. On a warm machine both are cache hits and take seconds.
# The background build is stopped with this script, whatever ends it (a failed unit test, Ctrl-C, a
# CI timeout): no builder outlives the command.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${VENV_BIN:-$ROOT/.venv/bin}
log=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/prebuild.log
mkdir -p "$(dirname "$log")"

echo ">> building the cluster's binaries and images in the background (log: $log)" >&2
# setsid: the builder and everything it starts form one process group, stopped together below.
setsid nice -n 10 bash -c 'scripts/cluster/build.sh >/dev/null && scripts/images/build.sh >/dev/null' \
  >"$log" 2>&1 </dev/null &
builder=$!
stop_builder() { kill -TERM -- "-$builder" 2>/dev/null && wait "$builder" 2>/dev/null || true; }
trap stop_builder EXIT

# In the background and waited for, as in with-cluster.sh: bash runs a trap only once its foreground
# command ends, so a SIGTERM (a CI timeout) would otherwise wait for the whole unit suite.
"$BIN/pytest" -q -ra -m 'not e2e' &
tests=$!
trap 'kill -TERM $tests 2>/dev/null; wait $tests; exit 130' INT
trap 'kill -TERM $tests 2>/dev/null; wait $tests; exit 143' TERM
wait $tests
trap 'exit 130' INT
trap 'exit 143' TERM

echo ">> unit tests done; waiting for the background build of the cluster's binaries and images" >&2
t0=$SECONDS
if ! wait "$builder"; then
  tail -n 30 "$log" >&2
  echo ">> the background build failed (full log: $log)" >&2
  exit 1
fi
echo ">> background build done ($((SECONDS - t0)) s of waiting)" >&2
trap - EXIT
scripts/cluster/with-cluster.sh "$BIN/pytest" -q -ra -m e2e
