#!/usr/bin/env bash
# Installs Apache Superset into its own virtualenv, .venv-superset at the repository root.
#
# Superset pins SQLAlchemy < 2, pandas < 2.2 and marshmallow < 4, which the platform's own
# .venv cannot share, so it lives apart and the platform talks to it over HTTP only
# (hypervision.superset). Idempotent: a stamp file holds the hash of the pins, and nothing
# is done while it matches. Takes about a minute and ~800 MB the first time.
# Called by infra/install.sh; can be run on its own. See infra/superset/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${HV_SUPERSET_VENV:-$ROOT/.venv-superset}
CACHE=${HV_CACHE_DIR:-$HOME/.cache/hypervision}
STAMP="$VENV/.hv-installed"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
skip() { printf '    %s\n' "$*"; }

say "Apache Superset in ${VENV#"$ROOT"/}"
pins_hash() {
  { cat "$HERE/requirements.in"; [ ! -f "$HERE/requirements.lock" ] || cat "$HERE/requirements.lock"; } |
    sha256sum | cut -c1-16
}
want=$(pins_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/superset" ]; then
  skip "up to date ($("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -i -E '^apache[-_]superset==' || echo superset))"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  skip "creating the virtualenv"
  python3 -m venv "$VENV"
  # Never committed: the whole folder is generated.
  printf '*\n' >"$VENV/.gitignore"
fi
mkdir -p "$CACHE"
constraints=()
if [ -f "$HERE/requirements.lock" ]; then
  constraints=(-c "$HERE/requirements.lock")
  skip "pip install with the versions of requirements.lock (log: $CACHE/pip-superset.log)"
else
  skip "pip install, no lock yet (log: $CACHE/pip-superset.log)"
fi
if ! { "$VENV/bin/python" -m pip install --upgrade pip setuptools wheel &&
  "$VENV/bin/python" -m pip install "${constraints[@]}" -r "$HERE/requirements.in"; } \
  >"$CACHE/pip-superset.log" 2>&1; then
  tail -n 30 "$CACHE/pip-superset.log" >&2
  exit 1
fi
if [ ! -f "$HERE/requirements.lock" ]; then
  # First install: record exactly what worked, so that every later install is the same.
  {
    echo "# Written by infra/superset/install.sh from a working install (pip freeze)."
    "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v -E '^(pip|setuptools|wheel)=='
  } >"$HERE/requirements.lock"
  skip "wrote infra/superset/requirements.lock"
  want=$(pins_hash)
fi
echo "$want" >"$STAMP"
skip "installed $("$VENV/bin/python" -m pip list --format=freeze | grep -i -E '^apache[-_]superset==')"
