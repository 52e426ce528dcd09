#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs what is
# missing (infra/install.sh), checks the code with ruff and its types with mypy (strict on
# ingest/ and the API, see [tool.mypy] in pyproject.toml), then runs pytest (whose
# tests/test_architecture.py checks the import contract). The tests start
# the platform's own PostgreSQL/TimescaleDB, Redis and Mosquitto on test ports and stop
# them at the end. Extra arguments go to pytest (e.g. `bash infra/test.sh -k dead_letters`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/infra/install.sh"
cd "$ROOT"
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
exec .venv/bin/pytest "$@"
