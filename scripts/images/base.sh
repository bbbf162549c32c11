#!/usr/bin/env bash
# Make a Debian base image from Debian's own packages, for machines that reach Debian's mirror but no
# container registry, and give it the name a Dockerfile's FROM expects:
#
#   base.sh docker.io/library/debian:bookworm-slim
#
# mmdebstrap --variant=minbase is what debian:bookworm-slim is made of (essential packages and apt),
# so a Dockerfile written for the registry's image builds unchanged on top of it. The root file system
# is cached by release, so a second machine state rebuilds only the (seconds-long) import.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ref=${1:?usage: base.sh REFERENCE (e.g. docker.io/library/debian:bookworm-slim)}
tag=${ref##*:}
suite=${tag%%-*}
case $suite in bookworm | trixie | bullseye) ;; *) die "base.sh makes Debian images only (bookworm, trixie, bullseye), not $ref" ;; esac
command -v mmdebstrap >/dev/null || die "making $ref needs mmdebstrap (apt-get install mmdebstrap)"

rootfs=$CACHE/base/$suite-minbase.tar
if [ ! -s "$rootfs" ]; then
  log "making $ref from Debian's packages (mmdebstrap --variant=minbase $suite)"
  mkdir -p "$(dirname "$rootfs")"
  # Slim like the registry's image: no documentation or manual pages.
  mmdebstrap --quiet --variant=minbase --include=ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$suite" "$rootfs.tmp.$$.tar" >&2  # mmdebstrap picks the format from the name
  mv "$rootfs.tmp.$$.tar" "$rootfs"
fi

config=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]')
case $(builder) in
  docker) docker import "${config[@]}" "$rootfs" "$ref" >/dev/null ;;
  podman) podman import "${config[@]}" "$rootfs" "$ref" >/dev/null ;;
  buildah)
    container=$(buildah "${BUILDAH_FLAGS[@]}" from scratch)
    trap 'buildah "${BUILDAH_FLAGS[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT
    mnt=$(buildah "${BUILDAH_FLAGS[@]}" mount "$container")
    tar -C "$mnt" -xf "$rootfs"
    buildah "${BUILDAH_FLAGS[@]}" umount "$container" >/dev/null
    buildah "${BUILDAH_FLAGS[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --cmd bash "$container"
    buildah "${BUILDAH_FLAGS[@]}" commit --quiet "$container" "$ref" >/dev/null
    ;;
esac
log "base image $ref made from Debian's packages ($rootfs)"
