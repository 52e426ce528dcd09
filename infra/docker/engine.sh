#!/usr/bin/env bash
# Docker on a Debian 12 machine, from Debian's own archive, idempotently:
#
# 1. `docker.io` (Debian 12), `debootstrap` (the base image) and `python3-pip` (the
#    wheelhouse), both for infra/docker/images.sh;
# 2. Compose v2 (`docker compose`): Debian 12 only has docker-compose 1.29, so the
#    `docker-compose` package of Debian 13 (trixie) is fetched with a separate apt state,
#    as infra/install.sh does for TimescaleDB's source, and installed with dpkg (it only
#    needs libc6); it puts the plugin in /usr/libexec/docker/cli-plugins;
# 3. /etc/docker/daemon.json: bridges only in 198.18.0.0/15 (the benchmarking range),
#    never Docker's default 172.17/16; overlay2;
# 4. dockerd started when it is not running (the machine may have no init system: then
#    it runs in the background, its log in /var/log/hv-dockerd.log).
#
# Run as root. Prints the versions at the end. See infra/docker/README.md.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
skip() { printf '    %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

CACHE=${HV_CACHE_DIR:-$HOME/.cache/hypervision}
DOCKER=/usr/bin/docker
DAEMON_JSON=/etc/docker/daemon.json
WANT_JSON='{
  "bip": "198.18.0.1/24",
  "default-address-pools": [{"base": "198.19.0.0/16", "size": 24}],
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": {"max-size": "20m", "max-file": "5"}
}'

say "Docker from Debian 12 (docker.io, debootstrap, python3-pip)"
missing=()
for p in docker.io debootstrap python3-pip; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  skip "installed: $(dpkg-query -W -f='${Version}' docker.io)"
else
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

say "Compose v2 (Debian 13's docker-compose package)"
if [ -x /usr/libexec/docker/cli-plugins/docker-compose ] &&
  /usr/libexec/docker/cli-plugins/docker-compose version --short 2>/dev/null | grep -q '^2\.'; then
  skip "installed: $(/usr/libexec/docker/cli-plugins/docker-compose version --short)"
else
  work="$CACHE/trixie"
  mkdir -p "$work/apt/lists/partial" "$work/debs"
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  echo "deb $mirror trixie main" >"$work/apt/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -q
  rm -f "$work"/debs/docker-compose_*.deb
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download docker-compose)
  dpkg -i "$work"/debs/docker-compose_*.deb
  skip "installed: $(/usr/libexec/docker/cli-plugins/docker-compose version --short)"
fi

say "Docker daemon configuration ($DAEMON_JSON)"
mkdir -p /etc/docker
if [ -f "$DAEMON_JSON" ] && python3 - "$DAEMON_JSON" "$WANT_JSON" <<'PY'
import json, sys
have = json.load(open(sys.argv[1]))
want = json.loads(sys.argv[2])
sys.exit(0 if all(have.get(k) == v for k, v in want.items()) else 1)
PY
then
  skip "address pools in 198.18.0.0/15"
  changed=0
else
  printf '%s\n' "$WANT_JSON" >"$DAEMON_JSON"
  skip "wrote: bridge 198.18.0.1/24, pools 198.19.0.0/16 by /24"
  changed=1
fi

say "Docker daemon"
if $DOCKER info >/dev/null 2>&1; then
  if [ "$changed" = 1 ]; then
    echo "dockerd runs with another configuration: restart it to apply $DAEMON_JSON" >&2
    exit 1
  fi
  skip "running"
else
  if [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    nohup /usr/sbin/dockerd >>/var/log/hv-dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do
    $DOCKER info >/dev/null 2>&1 && break
    sleep 1
  done
  $DOCKER info >/dev/null 2>&1 || { tail -n 20 /var/log/hv-dockerd.log >&2; exit 1; }
  skip "started"
fi
bridge=$($DOCKER network inspect bridge -f '{{(index .IPAM.Config 0).Subnet}}')
case $bridge in
  198.18.*|198.19.*) skip "engine $($DOCKER version -f '{{.Server.Version}}'), $($DOCKER info -f '{{.Driver}}'), bridge $bridge" ;;
  *) echo "the default bridge is $bridge, outside 198.18.0.0/15: fix $DAEMON_JSON and restart dockerd" >&2; exit 1 ;;
esac
