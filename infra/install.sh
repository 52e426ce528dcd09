#!/usr/bin/env bash
# Installs everything Hypervision needs on a Debian 12 machine, idempotently.
#
# 1. Debian packages: PostgreSQL 15 with its server headers, Redis, Mosquitto, build tools.
# 2. TimescaleDB, Apache-2 edition, built from Debian's own source package (trixie) against
#    PostgreSQL 15; the build is cached under $HV_CACHE_DIR and only redone when missing.
# 3. A virtualenv in .venv with the pinned Python dependencies (infra/requirements.lock).
# 4. A .env with a fresh secret key, when there is none.
#
# Every step says what it does and skips itself when already done. Run as root (or with
# sudo) on a fresh machine; a developer whose machine already has it all can run it too.
# See infra/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HV_CACHE_DIR:-$HOME/.cache/hypervision}
TSDB_VERSION=${HV_TIMESCALEDB_VERSION:-2.19}
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
skip() { printf '    %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_PACKAGES=(
  postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-client-$PG_MAJOR
  redis-server mosquitto mosquitto-clients nginx-light chromium
  cmake gcc make libssl-dev libkrb5-dev xz-utils
  python3 python3-venv python3-dev ca-certificates
  # sshd for the tests of deliveries by SFTP (tests/sharing start their own, on a test port).
  openssh-server
  fonts-dejavu-core
)

install_debian_packages() {
  say "Debian packages (${#APT_PACKAGES[@]})"
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    skip "all installed"
    return
  fi
  skip "installing: ${missing[*]}"
  as_root apt-get update -q
  # The packaged PostgreSQL, Redis and Mosquitto services are not used: the platform runs
  # its own on other ports (hypervision services start). policy-rc.d keeps them stopped
  # where the machine has no init system.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

timescaledb_installed() {
  [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/timescaledb.so" ] &&
    grep -q "default_version = '$TSDB_VERSION" "/usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control" 2>/dev/null
}

install_timescaledb() {
  say "TimescaleDB $TSDB_VERSION.x (Apache-2 edition) for PostgreSQL $PG_MAJOR"
  if timescaledb_installed; then
    skip "already installed: $(grep default_version /usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control)"
    return
  fi
  local work="$CACHE/timescaledb"
  local build
  build=$(ls -d "$work"/timescaledb-"$TSDB_VERSION".*/build 2>/dev/null | tail -n 1 || true)
  if [ -z "$build" ] || [ ! -f "$build/src/loader/timescaledb.so" ]; then
    # Debian 12 has no TimescaleDB; Debian 13 ships the Apache-2 edition as a source package.
    # A separate sources list and state folder leave the machine's own apt suites untouched.
    mkdir -p "$work/apt/lists/partial"
    local mirror
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    echo "deb-src $mirror trixie main" >"$work/apt/sources.list"
    local apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
      -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
    skip "fetching the trixie source package"
    as_root apt-get "${apt_opts[@]}" update -q
    (cd "$work" && as_root apt-get "${apt_opts[@]}" source --download-only timescaledb)
    local orig
    orig=$(ls "$work"/timescaledb_"$TSDB_VERSION".*.orig.tar.* | tail -n 1)
    skip "building from $(basename "$orig")"
    (cd "$work" && tar xf "$orig")
    local src
    src=$(ls -d "$work"/timescaledb-"$TSDB_VERSION".* | grep -v '\.tar' | tail -n 1)
    (cd "$src" && ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
      -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_BIN/pg_config" >"$work/bootstrap.log" 2>&1)
    (cd "$src/build" && make -j"$(nproc)" >"$work/make.log" 2>&1)
    build="$src/build"
  else
    skip "using the cached build in $build"
  fi
  (cd "$build" && as_root make install >"$work/install.log" 2>&1)
  timescaledb_installed || { echo "TimescaleDB did not install, see $work/*.log" >&2; exit 1; }
  skip "installed: $(grep default_version /usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control)"
}

install_virtualenv() {
  say "Python virtualenv in .venv"
  local venv="$ROOT/.venv"
  local stamp="$venv/.hv-installed"
  local want
  want=$(cat "$ROOT/pyproject.toml" "$ROOT/infra/requirements.lock" | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    skip "up to date"
    return
  fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  mkdir -p "$CACHE"
  skip "pip install (log: $CACHE/pip.log)"
  if ! { "$venv/bin/python" -m pip install --upgrade pip &&
    "$venv/bin/python" -m pip install -c "$ROOT/infra/requirements.lock" -e "$ROOT[dev]"; } \
    >"$CACHE/pip.log" 2>&1; then
    tail -n 30 "$CACHE/pip.log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
  skip "installed $("$venv/bin/python" -m pip list --format=freeze | wc -l) packages"
}

write_env_file() {
  say "Configuration (.env)"
  # Fresh random secrets, readable by their owner only; see .env.example for the rest.
  local name
  for name in HV_SECRET_KEY HV_HTTP_INTEGRATION_TOKEN; do
    if [ -f "$ROOT/.env" ] && grep -q "^$name=." "$ROOT/.env"; then
      skip ".env has $name"
      continue
    fi
    (umask 077 && printf '%s=%s\n' "$name" "$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >>"$ROOT/.env")
    skip "wrote a new $name to .env"
  done
}

install_node() {
  # Node.js runs the dashboard screenshot tests and the console's browser tests
  # (playwright-core driving Debian's Chromium) and the ingest benchmark's publisher (MQTT.js, bench/publisher). Debian's
  # own packages unless a Node.js with npm is already there.
  say "Node.js and the packages of the screenshot tests and the benchmark's publisher"
  if ! command -v npm >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
  fi
  if [ -d "$ROOT/tests/superset/node_modules/playwright-core" ]; then
    skip "tests/superset/node_modules up to date"
  else
    (cd "$ROOT/tests/superset" && npm ci --no-audit --no-fund --loglevel=error)
    skip "installed playwright-core for tests/superset"
  fi
  # The console's browser tests: playwright-core and axe-core (injected by the tests).
  if [ -d "$ROOT/tests/console/node_modules/axe-core" ]; then
    skip "tests/console/node_modules up to date"
  else
    (cd "$ROOT/tests/console" && npm ci --no-audit --no-fund --loglevel=error)
    skip "installed playwright-core and axe-core for tests/console"
  fi
  if [ -d "$ROOT/tests/oidc/node_modules/oidc-provider" ]; then
    skip "tests/oidc/node_modules up to date"
  else
    (cd "$ROOT/tests/oidc" && npm ci --no-audit --no-fund --loglevel=error)
    skip "installed oidc-provider for tests/oidc (the single sign-on tests' provider)"
  fi
  if [ -d "$ROOT/bench/publisher/node_modules/mqtt" ]; then
    skip "bench/publisher/node_modules up to date"
  else
    (cd "$ROOT/bench/publisher" && npm ci --no-audit --no-fund --loglevel=error)
    skip "installed mqtt for bench/publisher"
  fi
}

install_debian_packages
install_timescaledb
install_virtualenv
bash "$ROOT/infra/superset/install.sh"
install_node
write_env_file
say "Done. Next: .venv/bin/hypervision demo   (or: .venv/bin/hypervision --help)"
