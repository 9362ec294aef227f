#!/usr/bin/env bash
# Builds the images the Docker tests run, locally: nothing can be pulled from a
# registry on the machines these tests run on. Each image is built only when its tag
# is missing, so a second run on the same machine skips them.
#
#   bash tests/images/build.sh [busybox] [redis] [postgres]   # default: all three
#
# - miren-test/busybox: FROM scratch + Debian's static busybox (~2 MB, seconds).
# - miren-test/redis, miren-test/postgres: the real servers from Debian's packages,
#   in a root file system made by mmdebstrap and imported with `docker import`, then
#   finished by a Dockerfile here (CMD, USER, EXPOSE, STOPSIGNAL as a database image
#   sets them). Each is also tagged as the
#   image the user's examples name (`redis:7-alpine`, `postgres:16`, …), so those
#   examples run as written without a registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(busybox redis postgres)

have() { "$docker" image inspect "$1" >/dev/null 2>&1; }
tag_as() { local from=$1; shift; for t in "$@"; do have "$t" || "$docker" tag "$from" "$t"; done; }

busybox_image() {
  have miren-test/busybox && return 0
  local ctx
  ctx=$(mktemp -d)
  cp "$(command -v busybox)" "$ctx/busybox"
  cp "$here/busybox.Dockerfile" "$ctx/Dockerfile"
  "$docker" build -q -t miren-test/busybox "$ctx" >/dev/null
  rm -rf "$ctx"
}

# debian_image <name> <packages>: miren-test/<name> from a minimal Debian root file
# system with the packages (imported as miren-test/<name>-rootfs), finished by
# <name>.Dockerfile (user, ports, command, stop signal: what `docker import` can't set).
debian_image() {
  local name=$1 packages=$2 t
  have "miren-test/$name" && return 0
  t=$(mktemp -d)
  if ! have "miren-test/$name-rootfs"; then
    mmdebstrap --quiet --variant=essential --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/{doc,man,info,locale}/*' \
      bookworm "$t/rootfs.tar" "${MIREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    "$docker" import "$t/rootfs.tar" "miren-test/$name-rootfs" >/dev/null
    rm -f "$t/rootfs.tar"
  fi
  cp "$here/$name.Dockerfile" "$t/Dockerfile"
  cp "$here"/*.sh "$t/"
  "$docker" build -q -t "miren-test/$name" "$t" >/dev/null
  rm -rf "$t"
}

redis_image() {
  debian_image redis redis-server,redis-tools
  # Valkey is Redis's fork, wire-compatible: the `miren-valkey` addon's tests run the
  # real Redis server under Valkey's name (the addon starts whichever it has).
  tag_as miren-test/redis redis:7-alpine redis:7 valkey/valkey:9
}

postgres_image() {
  debian_image postgres postgresql-15,postgresql-client-15
  tag_as miren-test/postgres postgres:16 postgres:16-alpine
}

for w in "${want[@]}"; do
  case $w in
    busybox) busybox_image && tag_as miren-test/busybox busybox:1.36 busybox:latest ;;
    redis) redis_image ;;
    postgres) postgres_image ;;
    *) echo "unknown image: $w" >&2; exit 2 ;;
  esac
done
