#!/usr/bin/env bash
# The production stack, built and started for real: Docker and Compose v2 from Debian's
# archive (infra/docker/engine.sh), every image from one Debian 12 base
# (infra/docker/images.sh), then the tests of tests/deploy/test_stack.py (the upgrade
# from the previous release, health checks, an uplink through Mosquitto, the API and
# Superset through the TLS proxy, down/up, backup and restore into a fresh stack). Run as
# root on a Debian 12 machine; the whole suite (infra/test.sh) runs the same tests.
# Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/infra/install.sh"
cd "$ROOT"
exec .venv/bin/pytest -m docker tests/deploy "$@"
