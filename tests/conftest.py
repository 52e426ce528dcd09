"""Shared fixtures: the platform's real local services on test ports, migrations run for
real, two test members (alpha and beta), Celery workers and receivers as real processes.

The services are started by the fixtures (never assumed running) and stopped at the end.
A test that needs them fails loudly if they cannot start; nothing is skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Two test runs at once on one machine need their own folder and ports:
# HV_TEST_DATA_DIR=/tmp/hv-x HV_TEST_PORT_BASE=28000 pytest ...
# The tests' servers listen on PORT_BASE..PORT_BASE+999, below Linux's ephemeral range
# (32768-60999): a port in it may be taken at any moment by one of the thousands of client
# connections a run opens, or by a probe connecting to itself before the server is up.
TEST_DATA = Path(os.environ.get("HV_TEST_DATA_DIR", "/tmp/hypervision-test"))
PORT_BASE = int(os.environ.get("HV_TEST_PORT_BASE", "27000"))

# The environment is set before anything imports hypervision: settings are read once, and
# the worker and receiver processes inherit it.
os.environ.update({
    "HV_SECRET_KEY": secrets.token_hex(32),
    "HV_DATA_DIR": str(TEST_DATA),
    "HV_PG_PORT": str(PORT_BASE + 432),
    "HV_REDIS_PORT": str(PORT_BASE + 379),
    "HV_MQTT_PORT": str(PORT_BASE + 883),
    "HV_HTTP_PORT": str(PORT_BASE + 90),
    "HV_SUPERSET_PORT": str(PORT_BASE + 88),
    "HV_BATCH_SIZE": "200",
    "HV_BATCH_MAX_WAIT": "0.2",
    "HV_BROKER_VISIBILITY_TIMEOUT": "5",
    "HV_RETRY_BACKOFF_MAX": "2",
    "HV_TENANTS_DIR": str(REPO / "tests" / "payloads" / "tenants"),
    "HV_MQTT_CLIENT_ID": "hypervision-test-receiver",
})

from hypervision.settings import Settings, get_settings  # noqa: E402

TENANTS = REPO / "tests" / "payloads" / "tenants"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@contextmanager
def running_daemons(settings: Settings) -> Iterator[Settings]:
    """Fresh PostgreSQL/TimescaleDB, Redis and Mosquitto in settings.data_dir, stopped
    whatever happens: a start that fails half-way (PostgreSQL up, Mosquitto's port taken)
    stops what did start (tests/platform/test_test_fixtures.py)."""
    from hypervision import daemons

    daemons.stop_all(settings)
    if settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    settings.data_dir.mkdir(parents=True)
    settings.data_dir.chmod(0o755)
    try:
        daemons.start_all(settings)
        yield settings
    finally:
        daemons.stop_all(settings)


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[Settings]:
    """Fresh PostgreSQL/TimescaleDB, Redis and Mosquitto for the whole session."""
    with running_daemons(settings) as started:
        yield started


@pytest.fixture(scope="session")
def platform_db(services: Settings) -> Settings:
    """Migrations applied and the test members alpha and beta applied."""
    from hypervision import migrate
    from hypervision.db import connect_admin
    from hypervision.tenancy import apply as tenancy
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    with connect_admin(services) as conn:
        migrate.migrate_control(conn, log=lambda _: None)
        tenancy.apply(conn, load_dir(TENANTS), Catalogue.load(), services, log=lambda _: None)
    return services


@pytest.fixture
def admin(platform_db: Settings) -> Iterator[Any]:
    from hypervision.db import connect_admin

    with connect_admin(platform_db) as conn:
        yield conn


class Worker:
    """A real Celery worker process (`hypervision worker`) in its own process group."""

    def __init__(self, settings: Settings, concurrency: int = 2) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = open(self.settings.data_dir / "log" / "worker-test.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypervision", "worker", "--concurrency",
             str(self.concurrency), "--loglevel", "info"],
            env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker: main process and pool children, no goodbye."""
        import signal

        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        from hypervision.demo import stop_worker

        if self.process is not None:
            stop_worker(self.process, timeout=20)


@pytest.fixture
def worker(platform_db: Settings) -> Iterator[Worker]:
    w = Worker(platform_db).start()
    yield w
    w.stop()


@pytest.fixture
def receiver(platform_db: Settings) -> Iterator[Any]:
    from ingest.batcher import Batcher
    from ingest.receive import MqttReceiver, celery_sender

    settings = platform_db
    r = MqttReceiver(settings, Batcher(celery_sender(settings), settings.batch_size,
                                       settings.batch_max_wait).start()).start()
    yield r
    r.stop()


@pytest.fixture
def simulator(platform_db: Settings) -> Any:
    from hypervision.simulator import Simulator
    from hypervision.tenancy.spec import load_dir
    from ingest.decode import Catalogue

    seed = int(time.time() * 1000) % 100000
    sim = Simulator(load_dir(TENANTS), Catalogue.load(), seed=seed)
    # Frame counters in a range of their own, so that two tests never send the same
    # (DevEUI, fCnt, bytes), which the pipeline rightly treats as a replay.
    for device in sim.devices:
        device.f_cnt = seed * 10_000
    return sim


# The OpenID Connect provider, one for the session whatever folders run (tests/console's
# single sign-on and tests/superset's sign-in through the platform both use it).
from tests.oidc.fixture import oidc_provider  # noqa: E402, F401
