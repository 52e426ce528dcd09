"""The platform's own local daemons (hypervision.daemons), started for real.

These tests use a data directory and free ports of their own, not the session's services
from conftest.py, because they stop and restart everything. The tests of this module run in
order: the last one stops all services; the fixture stops them anyway.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import redis
from pydantic import SecretStr

from hypervision import daemons
from hypervision.settings import Settings

pytestmark = pytest.mark.services


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def private_data_dir() -> Path:
    """A fresh data_dir under /tmp that the postgres and mosquitto users can traverse.

    Not pytest's tmp_path: its root (/tmp/pytest-of-<user>) is 0700, so a service user
    could not reach the cluster when the tests run as root.
    """
    path = Path(tempfile.mkdtemp(prefix="hv-services-test-", dir="/tmp"))
    path.chmod(0o755)
    return path


def make_settings(data_dir: Path, **ports: int) -> Settings:
    values = {"pg_port": free_port(), "redis_port": free_port(), "mqtt_port": free_port()}
    values.update(ports)
    return Settings(secret_key="s" * 40, data_dir=data_dir, **values)  # type: ignore[arg-type]


def connect(settings: Settings, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(
        host=str(settings.pg_socket_dir), port=settings.pg_port,
        dbname=dbname or settings.pg_database, user=settings.pg_superuser, autocommit=True,
    )


def mqtt_client(client_id: str, *, clean_session: bool = True,
                manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       clean_session=clean_session, manual_ack=manual_ack)


@pytest.fixture(scope="module")
def local() -> Iterator[Settings]:
    """Settings for services of our own: a fresh data_dir and free ports."""
    data_dir = private_data_dir()
    settings = make_settings(data_dir)
    yield settings
    daemons.stop_all(settings)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_it_starts_every_service_and_each_one_answers(local: Settings) -> None:
    lines: list[str] = []
    daemons.start_all(local, log=lines.append)

    assert daemons.status(local) == {"postgres": True, "redis": True, "mosquitto": True}
    assert any("initialising" in line for line in lines)
    with connect(local) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (local.pg_database,)
    assert redis.Redis(host=local.redis_host, port=local.redis_port).ping()
    assert is_listening(local.mqtt_port)


def test_timescaledb_is_preloaded_and_its_telemetry_is_off(local: Settings) -> None:
    with connect(local) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("CREATE TABLE readings (time timestamptz NOT NULL, value double precision)")
        conn.execute("SELECT create_hypertable('readings', 'time')")
        conn.execute("INSERT INTO readings VALUES (now(), 1.5)")

        hypertables = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
        )
        assert hypertables.fetchall() == [("readings",)]
        assert conn.execute("SHOW timescaledb.telemetry_level").fetchone() == ("off",)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_starting_twice_changes_nothing(local: Settings) -> None:
    pids = (daemons.postgres.pid(local), daemons.redis.pid(local),
            daemons.mosquitto.pid(local))
    lines: list[str] = []

    daemons.start_all(local, log=lines.append)

    assert [line.split()[0] for line in lines] == ["=", "=", "="]
    assert (daemons.postgres.pid(local), daemons.redis.pid(local),
            daemons.mosquitto.pid(local)) == pids


def test_restarting_postgres_keeps_the_data(local: Settings) -> None:
    before = daemons.postgres.pid(local)

    daemons.postgres.restart(local)

    assert daemons.postgres.pid(local) not in (None, before)
    with connect(local) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_the_redis_queue_survives_a_restart(local: Settings) -> None:
    client = redis.Redis(host=local.redis_host, port=local.redis_port)
    client.rpush("celery", "task-1", "task-2")

    daemons.redis.stop(local)
    daemons.redis.start(local)

    assert client.lrange("celery", 0, -1) == [b"task-1", b"task-2"]


def test_a_redis_beyond_loopback_needs_a_password_and_its_file_keeps_only_a_hash(
    tmp_path: Path,
) -> None:
    """Off loopback, protected mode would refuse every client, and an open broker would
    take anyone's batches: the start is refused without HV_REDIS_PASSWORD, and with it
    every client authenticates (tests/scale/test_network_namespaces.py runs one)."""
    off_loopback = make_settings(tmp_path).model_copy(update={"redis_host": "198.18.0.1"})
    with pytest.raises(daemons.DaemonError, match="HV_REDIS_PASSWORD"):
        daemons.redis.conf(off_loopback)
    password = SecretStr("a-broker-password")
    named = off_loopback.model_copy(update={"redis_password": password,
                                            "redis_username": "worker"})
    text = daemons.redis.conf(named)
    assert "a-broker-password" not in text
    digest = hashlib.sha256(b"a-broker-password").hexdigest()
    assert "user default off resetpass\n" in text
    assert f"user worker on resetpass #{digest} ~* &* +@all\n" in text
    # On loopback no password is needed, as before.
    assert "user " not in daemons.redis.conf(make_settings(tmp_path))


def test_a_mosquitto_beyond_loopback_needs_an_account_and_its_file_keeps_only_a_hash(
    tmp_path: Path,
) -> None:
    """Off loopback an anonymous broker would take anyone's uplinks: the start is refused
    without HV_MQTT_USERNAME and HV_MQTT_PASSWORD, and with them the password file holds
    a salted PBKDF2-SHA512 hash in mosquitto's `$7$` form (a real broker checks it in
    tests/scale/test_network_namespaces.py)."""
    off_loopback = make_settings(tmp_path).model_copy(update={"mqtt_host": "198.18.0.1"})
    with pytest.raises(daemons.DaemonError, match="HV_MQTT_USERNAME and HV_MQTT_PASSWORD"):
        daemons.mosquitto.conf(off_loopback)
    named = off_loopback.model_copy(update={"mqtt_username": "receiver",
                                            "mqtt_password": SecretStr("an-mqtt-password")})
    text = daemons.mosquitto.conf(named)
    assert "allow_anonymous false\n" in text and "password_file " in text
    line = daemons.mosquitto.password_line("receiver", "an-mqtt-password")
    assert "an-mqtt-password" not in line
    user, _, rest = line.strip().partition(":")
    _, kind, iterations, salt, digest = rest.split("$")
    assert (user, kind, iterations) == ("receiver", "7", "101")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac(
        "sha512", b"an-mqtt-password", base64.b64decode(salt), 101)
    # On loopback, anonymous clients as before.
    assert "allow_anonymous true\n" in daemons.mosquitto.conf(make_settings(tmp_path))


def test_a_subscriber_can_hold_10000_unacknowledged_messages(local: Settings) -> None:
    """With mosquitto's default max_inflight_messages (20) it would receive only 20."""
    received: list[int] = []
    subscribed = threading.Event()
    subscriber = mqtt_client(f"hold-{uuid.uuid4().hex[:8]}", manual_ack=True)
    subscriber.on_message = lambda _c, _u, message: received.append(message.mid)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.connect(local.mqtt_host, local.mqtt_port)
    subscriber.loop_start()
    publisher = mqtt_client(f"pub-{uuid.uuid4().hex[:8]}")
    publisher.max_inflight_messages_set(1000)
    publisher.connect(local.mqtt_host, local.mqtt_port)
    publisher.loop_start()
    try:
        subscriber.subscribe("hold/#", qos=1)
        assert subscribed.wait(5)
        for n in range(10_500):
            publisher.publish("hold/test", str(n), qos=1)
        # Generous: the loop ends as soon as all arrive; a loaded machine is slow, not wrong.
        deadline = time.monotonic() + 120
        while len(received) < 10_500 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Nothing was acknowledged, so all of these are in flight at once.
        assert len(received) == 10_500
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        subscriber.loop_stop()
        subscriber.disconnect()


def test_a_persistent_session_keeps_its_queue_across_a_broker_restart(local: Settings) -> None:
    client_id = f"persistent-{uuid.uuid4().hex[:8]}"
    subscriber = mqtt_client(client_id, clean_session=False)
    subscriber.connect(local.mqtt_host, local.mqtt_port)
    subscriber.subscribe("queue/#", qos=1)
    subscriber.loop_start()
    time.sleep(0.3)
    subscriber.loop_stop()
    subscriber.disconnect()

    publisher = mqtt_client(f"pub-{uuid.uuid4().hex[:8]}")
    publisher.connect(local.mqtt_host, local.mqtt_port)
    publisher.loop_start()
    infos = [publisher.publish("queue/test", str(n), qos=1) for n in range(100)]
    for info in infos:
        info.wait_for_publish(5)
    publisher.loop_stop()
    publisher.disconnect()

    daemons.mosquitto.stop(local)
    daemons.mosquitto.start(local)

    received: list[bytes] = []
    subscriber = mqtt_client(client_id, clean_session=False)
    subscriber.on_message = lambda _c, _u, message: received.append(message.payload)
    subscriber.connect(local.mqtt_host, local.mqtt_port)
    subscriber.loop_start()
    deadline = time.monotonic() + 5
    while len(received) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    subscriber.loop_stop()
    subscriber.disconnect()
    assert received == [str(n).encode() for n in range(100)]


def test_the_broker_may_queue_a_million_messages_for_an_offline_client(local: Settings) -> None:
    conf = (local.data_dir / "mosquitto" / "mosquitto.conf").read_text()
    options = dict(line.split(maxsplit=1) for line in conf.splitlines()
                   if line and not line.startswith("#"))

    assert int(options["max_queued_messages"]) >= 1_000_000
    assert options["max_queued_bytes"] == "0"
    assert 10_000 <= int(options["max_inflight_messages"]) < 65_535


def test_a_port_held_by_another_process_is_a_clear_error(local: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        other = make_settings(local.data_dir / "other", pg_port=taken, redis_port=taken,
                              mqtt_port=taken)
        for start in (daemons.postgres.start, daemons.redis.start, daemons.mosquitto.start):
            began = time.monotonic()
            with pytest.raises(daemons.DaemonError, match=f"127.0.0.1:{taken} is already in use"):
                start(other)
            assert time.monotonic() - began < 2


def test_stopping_everything_leaves_nothing_listening(local: Settings) -> None:
    daemons.stop_all(local)

    assert daemons.status(local) == {"postgres": False, "redis": False, "mosquitto": False}
    for port in (local.pg_port, local.redis_port, local.mqtt_port):
        assert not is_listening(port)
    assert not (local.data_dir / "postgres" / "postmaster.pid").exists()
    lines: list[str] = []
    daemons.stop_all(local, log=lines.append)
    assert [line.split()[0] for line in lines] == ["=", "=", "="]
    assert os.listdir(local.data_dir / "log")


def test_the_test_services_fixture_stops_what_it_started_when_a_start_fails() -> None:
    """The session fixture's services (tests/conftest.py): Mosquitto's port is taken, so
    the start fails after PostgreSQL and Redis are up; both must be stopped."""
    from tests.conftest import running_daemons

    data_dir = private_data_dir()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        settings = make_settings(data_dir / "services", mqtt_port=squatter.getsockname()[1])
        try:
            with pytest.raises(daemons.DaemonError, match="already in use"), \
                    running_daemons(settings):
                pytest.fail("the services started on a taken port")
            assert daemons.status(settings) == {"postgres": False, "redis": False,
                                                 "mosquitto": False}
            assert not is_listening(settings.pg_port)
            assert not is_listening(settings.redis_port)
        finally:
            daemons.stop_all(settings)
            shutil.rmtree(data_dir, ignore_errors=True)
