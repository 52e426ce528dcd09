"""The first README command's main job: `hypervision demo` on the embedded default, in a
data folder and on ports of its own, as a new user would run it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PORT_BASE, TEST_DATA

REPO = Path(__file__).resolve().parents[1]
PORTS = {"HV_PG_PORT": PORT_BASE + 1432, "HV_REDIS_PORT": PORT_BASE + 1379,
         "HV_MQTT_PORT": PORT_BASE + 1883}

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_the_demo_feeds_simulated_events_through_the_pipeline_and_stops_cleanly() -> None:
    data = TEST_DATA.with_name(TEST_DATA.name + "-demo")
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o755)
    env = dict(os.environ, HV_DATA_DIR=str(data), HV_TENANTS_DIR=str(REPO / "tenants"),
               HV_SUPERSET_PORT=str(PORT_BASE + 1088),
               HV_MQTT_CLIENT_ID="hypervision-demo-test", COLUMNS="100",
               **{k: str(v) for k, v in PORTS.items()})
    done = subprocess.run(
        [sys.executable, "-m", "hypervision", "demo", "--duration", "12", "--rate", "40",
         "--stop-all"],
        env=env, capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    final = re.search(r"published (\d+) events; stored (\d+) uplinks, (\d+) dead letters",
                      done.stdout)
    assert final, done.stdout[-3000:]
    published, stored, dead = map(int, final.groups())
    assert stored >= 200
    assert dead == 0
    # Joins and statuses are published too; every uplink published was stored.
    assert published > stored
    assert "tenants applied: aven_odet, kerbihan, locmaria, syndicat" in done.stdout
    login = re.search(r"dashboards: (http://\S+) \(login (\S+) / (\S+)\)", done.stdout)
    assert login, done.stdout[-3000:]
    assert login.group(1).endswith(str(PORT_BASE + 1088)) or str(PORT_BASE + 1088) in login[1]
    for port in [*PORTS.values(), PORT_BASE + 1088]:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
