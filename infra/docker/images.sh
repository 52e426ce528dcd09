#!/usr/bin/env bash
# Builds every image of the stack from Debian's archive and PyPI alone, no registry:
#
# 1. the base, `hypervision-debian:12`: Debian 12 made by `debootstrap --variant=minbase`
#    from the machine's Debian mirror (with Debian's security and stable updates in its
#    sources), then `docker import` (a few minutes; made once, kept until
#    `--refresh-base`);
# 2. meanwhile, the wheelhouse: every pinned wheel of the platform and of Superset, made
#    by the host's pip (`python3-pip`), as the image `hypervision-wheels:<hash of the
#    locks>`: the builds install from it and download nothing;
# 3. TimescaleDB's files from the host's own build (infra/install.sh) when the host is
#    Debian 12 with PostgreSQL 15: the image then needs no compiler;
# 4. every image of docker-compose.yml that has a `build:` section (`docker compose
#    build`), each FROM that base: TimescaleDB, Redis, Mosquitto, nginx, the platform,
#    Superset, in two builds at once. Docker's build cache makes a second build take
#    seconds when nothing changed.
#
#   bash infra/docker/images.sh [--refresh-base] [SERVICE...]
#
# Needs a running Docker engine with Compose v2 (infra/docker/engine.sh). Run from any
# folder; builds the repository this script belongs to (or HV_BUILD_ROOT). See
# docs/runbook.md, "Install", and infra/docker/README.md.
set -euo pipefail

ROOT=${HV_BUILD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BASE=hypervision-debian:12
CACHE=${HV_CACHE_DIR:-$HOME/.cache/hypervision}
export PATH=/usr/bin:/usr/sbin:$PATH DOCKER_BUILDKIT=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
skip() { printf '    %s\n' "$*"; }

refresh=0
if [ "${1:-}" = "--refresh-base" ]; then
  refresh=1
  shift
fi

# The wheelhouse: built on the host with its own pip (its configuration, cache and
# indexes) at the versions of the locks, then handed to the image builds as the image
# `hypervision-wheels:<hash of the locks>`: the builds install from it with --no-index and
# download nothing. Without pip on the host the image is empty, and the builds download
# from PyPI. Made in the background while the base is made.
# HV_WHEELS_ROOT: another checkout whose pins include this one's (the upgrade test).
WHEELS_ROOT=${HV_WHEELS_ROOT:-$ROOT}
project_deps() {
  /usr/bin/python3 -c 'import tomllib, sys; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$WHEELS_ROOT/pyproject.toml"
}
# The hash of what the wheels depend on only (not the rest of pyproject.toml).
wheels_hash=$({ /usr/bin/python3 -V 2>&1; project_deps; cat "$WHEELS_ROOT/infra/requirements.lock" \
  "$WHEELS_ROOT/infra/superset/requirements.in" "$WHEELS_ROOT/infra/superset/requirements.lock"; } | sha256sum | cut -c1-16)
WHEELS=hypervision-wheels:$wheels_hash
house="$CACHE/wheelhouse/$wheels_hash"
wheels_pid=
make_wheelhouse() {
  # Debian 12's own python3, as in the images: the wheels' environment markers
  # (python_full_version...) must be evaluated for the images' interpreter.
  /usr/bin/python3 -m pip --version >/dev/null 2>&1 || return 0
  local pip=(/usr/bin/python3 -m pip) deps
  deps=$(mktemp)
  project_deps >"$deps"
  "${pip[@]}" wheel -q --wheel-dir "$house" pip setuptools wheel &&
    "${pip[@]}" wheel -q --wheel-dir "$house" -c "$WHEELS_ROOT/infra/requirements.lock" -r "$deps" &&
    "${pip[@]}" wheel -q --wheel-dir "$house" -c "$WHEELS_ROOT/infra/superset/requirements.lock" \
      -r "$WHEELS_ROOT/infra/superset/requirements.in"
  local status=$?
  rm -f "$deps"
  return $status
}
if ! docker image inspect "$WHEELS" >/dev/null 2>&1; then
  rm -rf "$house"
  mkdir -p "$house"
  wheels_start=$(date +%s)
  make_wheelhouse >"$CACHE/wheelhouse.log" 2>&1 &
  wheels_pid=$!
fi

say "Base image $BASE (debootstrap --variant=minbase bookworm)"
if [ "$refresh" = 0 ] && docker image inspect "$BASE" >/dev/null 2>&1; then
  skip "exists, made $(docker image inspect -f '{{.Created}}' "$BASE" | cut -c1-19)"
else
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  rootfs=$(mktemp -d /var/tmp/hv-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  skip "from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; exit 1; }
  # Debian's security and stable updates too (debootstrap writes the release alone): each
  # build's `apt-get update` then installs the current, patched packages.
  security=$(awk '/^URIs:/{u=$2} /^Suites:.*-security/{print u; exit}' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$security" ] || security=http://deb.debian.org/debian-security
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
  # Nothing cached in the image: apt's lists come back with each build's `apt-get update`.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs.log"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  skip "imported $(docker image inspect -f '{{.Size}}' "$BASE" | numfmt --to=iec)"
fi

say "TimescaleDB's extension files"
# The build host's own TimescaleDB build (infra/install.sh: Debian 13's source package,
# Apache-2 edition, for Debian 12's PostgreSQL 15) is what the image would compile: when
# this host is Debian 12 and has it, its files are copied in (stage `prebuilt` of
# timescaledb/Dockerfile) instead of compiling them again with LLVM and cmake.
tsdb_from=compiled
tsdb_built_for=
prebuilt="$ROOT/infra/docker/timescaledb/prebuilt"
tsdb_build=$(ls -d "$CACHE"/timescaledb/timescaledb-2.19.*/build 2>/dev/null | tail -n 1 || true)
if [ -n "$tsdb_build" ] && [ -f "$tsdb_build/src/loader/timescaledb.so" ] &&
  grep -q '^VERSION_ID="12"' /etc/os-release &&
  [ "$(/usr/lib/postgresql/15/bin/pg_config --version 2>/dev/null | cut -d' ' -f2 | cut -d. -f1)" = 15 ]; then
  rm -rf "$prebuilt"
  make -C "$tsdb_build" install DESTDIR="$prebuilt" >"$CACHE/timescaledb/image-install.log" 2>&1 ||
    { tail -n 20 "$CACHE/timescaledb/image-install.log" >&2; exit 1; }
  # The same files at each run: the layer cache holds as long as the build does.
  find "$prebuilt" -exec touch -h -d @0 {} +
  tsdb_from=prebuilt
  # The image refuses these files if its PostgreSQL is older than the one they were built
  # against (a newer minor version may add symbols they use).
  tsdb_built_for=$(dpkg-query -W -f='${Version}' postgresql-server-dev-15)
  skip "from the host's build in ${tsdb_build%/build}"
else
  skip "none on this host: compiled in the image"
fi

say "Wheelhouse (the platform's and Superset's pinned wheels)"
if [ -z "$wheels_pid" ]; then
  skip "exists ($WHEELS)"
else
  if wait "$wheels_pid"; then
    skip "$(find "$house" -name '*.whl' | wc -l) wheels in $(($(date +%s) - wheels_start)) s"
  else
    tail -n 20 "$CACHE/wheelhouse.log" >&2
    skip "could not make it: the images download from PyPI"
    rm -rf "${house:?}"/*
  fi
  find "$house" -exec touch -h -d @0 {} +
  tar -C "$house" -c . | docker import - "$WHEELS" >/dev/null
  rm -rf "$house"
fi

say "The stack's images (docker compose build $*)"
cd "$ROOT"
# The compose file refuses to load without its secrets; building needs none of them.
env_file=$(mktemp)
trap 'rm -f "$env_file"' EXIT
grep -o '\${[A-Z_]*:?' docker-compose.yml | sort -u | sed 's/^\${\(.*\):?$/\1=\/build-only/' >"$env_file"
start=$(date +%s)
build() {
  docker compose --env-file "$env_file" build \
    --build-arg TSDB_FROM="$tsdb_from" --build-arg TSDB_BUILT_FOR="$tsdb_built_for" \
    --build-arg WHEELS="$WHEELS" "$@"
}
if [ $# -gt 0 ]; then
  build "$@"
else
  # Every image, in two builds at once: Compose builds one service after another in the
  # order of depends_on, though the platform's images and the others share nothing.
  # Superset's first: its build makes the platform's stages and Superset's virtualenv at
  # once, then `migrate` (the platform's image) is the build cache's.
  log="$CACHE/images-platform.log"
  { build superset && build migrate; } >"$log" 2>&1 &
  platform_pid=$!
  skip "the platform's images in the background (log: $log)"
  build timescaledb redis mosquitto proxy
  wait "$platform_pid" || { tail -n 40 "$log" >&2; exit 1; }
  skip "the platform's images: done"
fi
skip "built in $(($(date +%s) - start)) s"
