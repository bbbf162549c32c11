#!/usr/bin/env bash
# `make images`: build the project's images from their Dockerfiles into OCI archives under .images/.
#
#   build.sh [IMAGE...]     IMAGE: operator, trainer, pause, coredns (default: $CLUSTER_IMAGES, or all four)
#
# Each archive is named by a content hash of everything its image is made of (the Dockerfile, the
# files its .dockerignore allows, the base image, the build arguments), kept in the cache outside the
# clone ($XDG_CACHE_HOME/chef-genius/images/) and linked from .images/NAME.tar, so a warm machine
# rebuilds nothing and a changed input never reuses a stale image. The builder is whichever the
# machine has: docker, podman or buildah. Where no registry is reachable (CHEF_BASE_FROM_DEBIAN=1, or
# when pulling the base fails) the base image is made from Debian's packages by base.sh and tagged
# with the name the Dockerfiles expect, so the same Dockerfiles build unchanged everywhere.
# Prints "NAME REFERENCE ARCHIVE" per image on stdout (scripts/cluster/node.sh imports them).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

images=("$@")
[ ${#images[@]} -gt 0 ] || read -r -a images <<<"${CLUSTER_IMAGES:-operator trainer pause coredns}"
mkdir -p "$CACHE" "$ROOT/.images"

for name in "${images[@]}"; do
  read -r dockerfile context_list ref < <(image_spec "$name")
  context=$(mktemp -d "$CACHE/.context.XXXXXX")
  trap 'rm -rf "$context"' EXIT
  "$context_list" "$name" "$context"
  base_ref=$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$ROOT/$dockerfile" | head -1)
  base_key=""
  if [ -n "$base_ref" ]; then
    base_key=$(ensure_base "$base_ref")
  fi
  key=$( { echo "$ref $base_ref $base_key"; cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum; } |
    sha256sum | cut -c1-16)
  archive=$CACHE/$name-$key.tar
  # One build of an image at a time (two `make cluster`s, or make images beside one): the second
  # waits, then finds the archive the first one wrote.
  exec 9>"$CACHE/.$name.lock"
  flock 9
  if [ ! -s "$archive" ]; then
    log "building $ref from $dockerfile (inputs $key; log: $CACHE/$name-$key.log)"
    t0=$SECONDS
    if ! builder_build "$ref" "$ROOT/$dockerfile" "$context" >"$CACHE/$name-$key.log" 2>&1; then
      tail -n 30 "$CACHE/$name-$key.log" >&2
      die "building $ref failed (full log: $CACHE/$name-$key.log)"
    fi
    builder_save "$ref" "$archive.tmp.$$" && mv "$archive.tmp.$$" "$archive"
    log "$ref built in $((SECONDS - t0)) s: archive $(du -h "$archive" | cut -f1)"
    # The archives of this image's earlier inputs are stale now: only the newest is kept.
    find "$CACHE" -maxdepth 1 -name "$name-*.tar" ! -path "$archive" -delete
    builder_tidy
  fi
  flock -u 9
  rm -rf "$context"; trap - EXIT
  ln -sfn "$archive" "$ROOT/.images/$name.tar"
  echo "$name $ref $archive"
done
