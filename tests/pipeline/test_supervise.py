"""`hypervision supervise`: the pipeline's processes under supervisord. A worker killed
with SIGKILL is started again with nobody at the keyboard, and ingestion goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision import supervise
from hypervision.settings import Settings
from tests.conftest import wait_for
from tests.pipeline.helpers import dedup_id, publish, stored_count

pytestmark = [pytest.mark.services, pytest.mark.slow]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def program_pid(settings: Settings, name: str) -> int | None:
    """The pid supervisord reports for a program, or None while it is not running."""
    result = supervise.ctl(settings, "pid", name)
    text = result.stdout.strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


@pytest.fixture
def supervised(platform_db: Settings) -> Iterator[subprocess.Popen[bytes]]:
    log = (platform_db.data_dir / "log" / "supervise-test.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "hypervision", "supervise", "--only", "worker,receiver"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_killed_worker_is_started_again_by_the_supervisor_and_ingestion_goes_on(
    platform_db: Settings, admin: psycopg.Connection[Any], simulator: Any,
    supervised: subprocess.Popen[bytes],
) -> None:
    first = wait_for(lambda: program_pid(platform_db, "worker"), what="the supervised worker")
    receiver = wait_for(lambda: program_pid(platform_db, "receiver"),
                        what="the supervised receiver")
    worker_log = platform_db.data_dir / "log" / "worker.log"
    wait_for(lambda: worker_log.exists() and "ready" in worker_log.read_text(errors="replace"),
             what="the worker ready")

    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (pid := program_pid(platform_db, "worker")) != first and pid,
                      timeout=60, what="supervisord to start the worker again")
    assert running(second) and not running(first)
    assert program_pid(platform_db, "receiver") == receiver  # the others were left alone

    events = [simulator.uplink(d) for _ in range(50) for d in simulator.devices]
    ids = [dedup_id(p) for _, p in events]
    publish(platform_db, events)
    wait_for(lambda: stored_count(admin, ids) == len(ids), timeout=120,
             what="uplinks stored by the restarted worker")
    status = supervise.ctl(platform_db, "status").stdout
    assert "worker" in status and "RUNNING" in status

    # SIGTERM to supervise stops every program, then itself.
    supervised.send_signal(signal.SIGTERM)
    supervised.wait(60)
    wait_for(lambda: not running(second) and not running(receiver), timeout=30,
             what="the programs to stop with their supervisor")


def test_supervise_refuses_an_unknown_program(platform_db: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hypervision", "supervise", "--only", "worker,wroker"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "wroker" in result.stdout + result.stderr
