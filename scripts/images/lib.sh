# Shared by the image scripts (build.sh, base.sh): where images live and how each one is made.
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGES_DIR=$ROOT/scripts/images
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/images
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
APP_VERSION=$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/recipe-training-operator/Chart.yaml")
K8S_VERSION=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$ROOT/scripts/cluster/chef-k8s/go.mod" | head -1)
source "$IMAGES_DIR/versions.sh"
# The local builder's storage: the Dockerfiles' base and build cache (outside the clone).
BUILDAH_FLAGS=(--storage-driver overlay)

die() { echo "images: $*" >&2; exit 1; }
log() { echo ">> $*" >&2; }

# image_spec NAME: "DOCKERFILE CONTEXT-FUNCTION REFERENCE" of one of the project's images. The
# references are the ones the chart and the node expect, so nothing has to be retagged.
image_spec() {
  case $1 in
    operator) echo "operator/Dockerfile context_from_dockerignore ghcr.io/chefgenius/recipe-training-operator:$APP_VERSION" ;;
    trainer) echo "trainer_image/Dockerfile context_from_dockerignore ghcr.io/chefgenius/recipe-trainer:$APP_VERSION" ;;
    pause) echo "scripts/images/pause/Dockerfile context_pause registry.k8s.io/pause:$PAUSE_VERSION" ;;
    coredns) echo "scripts/images/coredns/Dockerfile context_coredns registry.k8s.io/coredns/coredns:$COREDNS_VERSION" ;;
    *) die "unknown image $1 (operator, trainer, pause, coredns)" ;;
  esac
}

# context_from_dockerignore NAME DIR: copy into DIR exactly what the Dockerfile's allow-list
# (<Dockerfile>.dockerignore, `!path` lines) lets in, tracked or new files alike, so the content hash
# covers the same files the build sees and nothing that git ignores.
context_from_dockerignore() {
  local dockerfile paths
  read -r dockerfile _ < <(image_spec "$1")
  mapfile -t paths < <(sed -n 's/^!\([^*]*\)$/\1/p' "$ROOT/$dockerfile.dockerignore" | sed 's#/$##')
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- "${paths[@]}" |
    { grep -zv -e '__pycache__' -e '\.pyc$' -e '\.egg-info/' || true; } | xargs -0 -r cp --parents -t "$2")
  cp "$ROOT/$dockerfile" "$2/Dockerfile"
  cp "$ROOT/$dockerfile.dockerignore" "$2/.dockerignore"
}

# The pause image's one binary, from this Kubernetes release's own source (build/pause/linux).
context_pause() {
  local src
  src=$(cd /tmp && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -f "$src/build/pause/linux/pause.c" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$K8S_VERSION"
  command -v gcc >/dev/null || die "the pause image needs gcc (apt-get install gcc libc6-dev)"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-chefgenius" -o "$2/pause" "$src/build/pause/linux/pause.c"
  strip "$2/pause"
  cp "$IMAGES_DIR/pause/Dockerfile" "$2/Dockerfile"
}

# CoreDNS from the Go module proxy with only the plugins the cluster uses (scripts/images/coredns/,
# a module of its own), a static binary cached by version and by a hash of that module.
context_coredns() {
  local mod=$IMAGES_DIR/coredns key dir
  key=$COREDNS_VERSION-$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" | sha256sum | cut -c1-12)
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/chef-genius/coredns/$key
  if [ ! -x "$dir/coredns" ]; then
    log "building CoreDNS $COREDNS_VERSION into $dir (a few minutes, once)"
    mkdir -p "$dir"
    (cd "$mod" && CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags "-s -w" -o "$dir/coredns.tmp.$$" .) >&2
    mv "$dir/coredns.tmp.$$" "$dir/coredns"
  fi
  cp "$dir/coredns" "$2/coredns"
  cp "$IMAGES_DIR/coredns/Dockerfile" "$2/Dockerfile"
}

# The builder this machine has, in order of preference.
builder() {
  if [ -n "${CHEF_IMAGE_BUILDER:-}" ]; then echo "$CHEF_IMAGE_BUILDER"
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
  elif command -v podman >/dev/null; then echo podman
  elif command -v buildah >/dev/null; then echo buildah
  else die "no image builder: install docker, podman or buildah (apt-get install buildah)"
  fi
}

# builder_build REF DOCKERFILE CONTEXT: build one image. Where the builder can (buildah, podman), the
# RUN steps borrow pip's download cache (a machine that made the virtualenv downloads torch once, not
# twice) and the machine's own trust store and pip configuration (a machine behind a TLS-inspecting
# proxy); none of them lands in a layer, and the Dockerfiles need none of them. Docker's image format,
# because OCI's has no SHELL instruction (the trainer's RUN steps are bash).
builder_build() {
  local ref=$1 dockerfile=$2 context=$3 pip_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pip volumes=()
  mkdir -p "$pip_cache"
  volumes+=(-v "$pip_cache:/root/.cache/pip")
  local file
  for file in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
    [ -f "$file" ] && volumes+=(-v "$file:$file:ro")
  done
  case $(builder) in
    docker) docker build -f "$dockerfile" -t "$ref" "$context" ;;
    podman) podman build --format docker --layers "${volumes[@]}" -f "$dockerfile" -t "$ref" "$context" ;;
    buildah) buildah "${BUILDAH_FLAGS[@]}" bud --format docker --layers --isolation chroot "${volumes[@]}" \
      -f "$dockerfile" -t "$ref" "$context" ;;
  esac
}

# builder_save REF FILE: an OCI archive (uncompressed layers: compressing several GB on two cores
# costs minutes, and the archive only travels to this machine's containerd) that containerd imports.
builder_save() {
  case $(builder) in
    docker) docker save -o "$2" "$1" ;;
    podman) podman save --format oci-archive -o "$2" "$1" ;;
    buildah) buildah "${BUILDAH_FLAGS[@]}" push --quiet --disable-compression "$1" "oci-archive:$2:$1" ;;
  esac
}

# builder_tidy: the builder keeps every replaced image and intermediate layer as its cache (a source
# change then rebuilds only the last steps of the trainer image, not torch and DeepSpeed's ops);
# when the disk runs short (under IMAGES_MIN_FREE_GB, 30 by default) it drops them. Best effort:
# the image is built by then, and a layer some container still uses (a build killed midway leaves
# its working container) stays, with a line saying how to free it, instead of failing the build.
builder_tidy() {
  local free_gb pruned=0
  free_gb=$(df -P -BG "$CACHE" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  [ "$free_gb" -lt "${IMAGES_MIN_FREE_GB:-30}" ] || return 0
  log "only ${free_gb} GB free: dropping the builder's cached layers"
  case $(builder) in
    docker) docker image prune -f >/dev/null || pruned=$? ;;
    podman) podman image prune -f >/dev/null || pruned=$? ;;
    buildah) buildah "${BUILDAH_FLAGS[@]}" rmi --prune >/dev/null || pruned=$? ;;
  esac
  [ "$pruned" = 0 ] ||
    log "some cached layers stay: a container of $(builder) still uses them ('$(builder) containers' lists them; remove the ones no build is running)"
}

builder_has() {
  case $(builder) in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    podman) podman image exists "$1" ;;
    buildah) buildah "${BUILDAH_FLAGS[@]}" inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

# ensure_base REF: make sure the builder has the base image REF; print a key that changes with it.
# A registry is tried first unless CHEF_BASE_FROM_DEBIAN=1; without one, base.sh makes it from
# Debian's packages under the same name.
ensure_base() {
  local ref=$1
  if ! builder_has "$ref"; then
    if [ "${CHEF_BASE_FROM_DEBIAN:-0}" != 1 ] && timeout 120 "$(builder)" pull -q "$ref" >/dev/null 2>&1; then
      log "pulled $ref"
    else
      "$IMAGES_DIR/base.sh" "$ref" >&2
    fi
  fi
  case $(builder) in
    docker) docker image inspect -f '{{.Id}}' "$ref" ;;
    podman) podman image inspect -f '{{.Id}}' "$ref" ;;
    buildah) buildah "${BUILDAH_FLAGS[@]}" inspect --type image -f '{{.FromImageID}}' "$ref" ;;
  esac
}
