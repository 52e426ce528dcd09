"""End to end through the real parts: Mosquitto → receiver → Redis → Celery worker →
TimescaleDB, with ChirpStack-format events from the simulator."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

from hypervision import daemons
from tests.conftest import Worker, wait_for
from tests.pipeline.helpers import (
    broker_held_messages,
    dedup_id,
    measurements_of,
    publish,
    stored_count,
    uplinks_by_member,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def uplinks(simulator: Any, per_device: int) -> list[tuple[str, bytes]]:
    return [simulator.uplink(d) for _ in range(per_device) for d in simulator.devices]


def make_receiver(settings: Any) -> Any:
    from ingest.batcher import Batcher
    from ingest.receive import MqttReceiver, celery_sender

    return MqttReceiver(settings, Batcher(celery_sender(settings), settings.batch_size,
                                          settings.batch_max_wait).start()).start()


def test_published_uplinks_land_once_in_their_members_schemas(
    platform_db: Any, admin: psycopg.Connection, worker: Worker, receiver: Any, simulator: Any
) -> None:
    events = uplinks(simulator, per_device=20)
    ids = [dedup_id(p) for _, p in events]
    publish(platform_db, events)
    wait_for(lambda: stored_count(admin, ids) == len(ids), what="all uplinks stored")
    assert uplinks_by_member(admin, ids) == {"alpha": 60, "beta": 60}

    # Measurements, computed by hand from what the device sent (ChirpStack's object).
    for topic, payload in events[:6]:
        body = json.loads(payload)
        obj = body["object"]
        schema = "tenant_alpha" if "/device/a1" in topic else "tenant_beta"
        got = measurements_of(admin, schema, body["deduplicationId"])
        model = body["deviceInfo"]["deviceProfileName"]
        if model.endswith("EM300-DI"):
            litres_per_pulse = 10 if schema == "tenant_alpha" else 1
            assert got["water.index"] == (obj["pulse"] * litres_per_pulse, "L")
        elif model.endswith("EM400-MUD"):
            depth = 1500 if schema == "tenant_alpha" else 1200
            assert got["fill.distance"] == (obj["distance"], "mm")
            level = max(0.0, min(100.0, (depth - obj["distance"]) / depth * 100))
            assert got["fill.level"][0] == pytest.approx(level, abs=0.01)
        else:
            assert got["air.co2"] == (obj["co2"], "ppm")
            assert got["air.temperature"] == (obj["temperature"], "°C")
        assert got["battery.level"] == (obj["battery"], "%")

    # The same events again: nothing changes, each is counted as a duplicate.
    before = admin.execute(
        "SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes WHERE outcome = 'duplicate'"
    ).fetchone()[0]
    publish(platform_db, events)
    wait_for(lambda: admin.execute(
        "SELECT coalesce(sum(events), 0) FROM hv.ingest_outcomes WHERE outcome = 'duplicate'"
    ).fetchone()[0] - before >= len(events), what="duplicates counted")
    assert uplinks_by_member(admin, ids) == {"alpha": 60, "beta": 60}
    measurement_rows = admin.execute(
        "SELECT count(*) FROM tenant_alpha.measurements WHERE deduplication_id = ANY(%s::uuid[])",
        (ids,),
    ).fetchone()[0]
    # em300-di: water.index, temperature, humidity, battery, minus what the frame lacks.
    assert measurement_rows > 0
    assert measurement_rows == admin.execute(
        "SELECT count(DISTINCT (dev_eui, metric, time)) FROM tenant_alpha.measurements"
        " WHERE deduplication_id = ANY(%s::uuid[])", (ids,)
    ).fetchone()[0]


def test_events_published_while_the_receiver_is_down_arrive_when_it_returns(
    platform_db: Any, admin: psycopg.Connection, worker: Worker, simulator: Any
) -> None:
    first = make_receiver(platform_db)  # establishes the persistent session
    first.stop()
    held_before = broker_held_messages(platform_db)
    events = uplinks(simulator, per_device=50)
    ids = [dedup_id(p) for _, p in events]
    publish(platform_db, events)  # returns once the broker acknowledged every event
    # The broker holds them for the absent receiver's session; none reached the pipeline.
    wait_for(lambda: broker_held_messages(platform_db) >= held_before + len(ids),
             what="the broker to hold the events for the receiver's session")
    assert first.received == 0
    assert stored_count(admin, ids) == 0
    second = make_receiver(platform_db)
    try:
        wait_for(lambda: stored_count(admin, ids) == len(ids), what="queued events delivered")
        # They came through the returning receiver, from its session.
        assert second.received >= len(ids)
    finally:
        second.stop()


def leave_the_restore_lock_held(settings: Any) -> None:
    """The worst moment to be killed: while holding the lock under which a worker puts
    overdue batches back on the queue. The lock is left as kombu leaves it, with the
    expiry the pipeline's transport options give it (kombu's own default otherwise)."""
    import redis
    from kombu.transport.redis import Channel

    from hypervision.celery_app import make_app

    expire = make_app(settings).conf.broker_transport_options.get(
        "unacked_mutex_expire", Channel.unacked_mutex_expire)
    with redis.Redis.from_url(settings.redis_url) as client:
        client.set(Channel.unacked_mutex_key, "held by the killed worker", ex=expire, nx=True)


def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    platform_db: Any, admin: psycopg.Connection, receiver: Any, simulator: Any
) -> None:
    events = uplinks(simulator, per_device=1000)  # 6,000 uplinks, 30 batches
    ids = [dedup_id(p) for _, p in events]
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    worker = Worker(platform_db, concurrency=1).start()
    publisher = threading.Thread(target=publish, args=(platform_db, first))
    publisher.start()
    # Killed as soon as its first batches are stored, while the first half is still
    # arriving; the second half is published once it is dead: the kill falls mid-ingest
    # however fast the machine is.
    wait_for(lambda: stored_count(admin, ids) > 0, interval=0.02,
             what="the worker to start storing")
    worker.kill()
    publisher.join()
    publish(platform_db, second)
    partial = stored_count(admin, ids)
    assert partial <= len(first), "a dead worker stored uplinks"
    leave_the_restore_lock_held(platform_db)
    replacement = Worker(platform_db).start()
    try:
        wait_for(lambda: stored_count(admin, ids) == len(ids), timeout=300,
                 what="redelivered batches stored")
        time.sleep(2)  # a late redelivery must not add anything either
        assert stored_count(admin, ids) == len(ids)
        measurement_dups = admin.execute(
            "SELECT count(*) - count(DISTINCT (dev_eui, metric, time))"
            " FROM tenant_alpha.measurements WHERE deduplication_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()[0]
        assert measurement_dups == 0
    finally:
        replacement.stop()


def test_a_postgresql_restart_during_ingestion_loses_nothing(
    platform_db: Any, worker: Worker, receiver: Any, simulator: Any
) -> None:
    from hypervision.db import connect_admin

    events = uplinks(simulator, per_device=300)
    ids = [dedup_id(p) for _, p in events]
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    with connect_admin(platform_db) as admin:
        (started_before,) = admin.execute("SELECT pg_postmaster_start_time()").fetchone()
    publisher = threading.Thread(target=publish, args=(platform_db, first))
    publisher.start()
    # The server goes down once the pipeline is storing the first half, and the second
    # half is published while it is down: ingestion is under way across the restart
    # however fast the machine is.
    with connect_admin(platform_db) as admin:
        wait_for(lambda: stored_count(admin, ids) > 0, interval=0.02,
                 what="the pipeline to start storing")
    daemons.postgres.stop(platform_db)
    try:
        publish(platform_db, second)
        publisher.join()
    finally:
        daemons.postgres.start(platform_db)
    with connect_admin(platform_db) as admin:
        (started_after,) = admin.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert started_after > started_before  # the server did restart
        wait_for(lambda: stored_count(admin, ids) == len(ids), timeout=120,
                 what="every uplink stored after the restart")


def test_bad_events_become_dead_letters_with_their_reason_and_bytes(
    platform_db: Any, admin: psycopg.Connection, worker: Worker, receiver: Any, simulator: Any
) -> None:
    device = simulator.devices[0]
    topic, good = simulator.uplink(device)
    body = json.loads(good)
    wrong_type = dict(body, fCnt="seven", deduplicationId="6d1b2f0e-3a31-4c55-9d5e-0c7f2b6a9e11")
    unknown = json.loads(good)
    unknown["deviceInfo"]["devEui"] = "ffffffffffff0001"
    unknown_topic = topic.replace(device.dev_eui, "ffffffffffff0001")
    oversized = dict(body, data="A" * 80000)
    marker = str(time.time())
    bad = [
        (topic, b'{"deduplicationId": "' + marker.encode()),
        (topic, json.dumps(wrong_type).encode()),
        (unknown_topic, json.dumps(unknown).encode()),
        (topic, json.dumps(oversized).encode()),
    ]
    publish(platform_db, bad)

    def letters() -> list[tuple[str, bytes]]:
        return admin.execute(
            "SELECT reason, payload FROM hv.dead_letters WHERE payload = ANY(%s)",
            ([p for _, p in bad],),
        ).fetchall()

    found = wait_for(lambda: len(letters()) == 4 and letters(), what="four dead letters")
    reasons = {bytes(payload): reason for reason, payload in found}
    assert reasons == {
        bad[0][1]: "malformed_json",
        bad[1][1]: "invalid_event",
        bad[2][1]: "unknown_device",
        bad[3][1]: "oversized",
    }
    detail = admin.execute(
        "SELECT detail, dev_eui, member_slug FROM hv.dead_letters WHERE payload = %s", (bad[1][1],)
    ).fetchone()
    assert "fCnt" in detail[0] and detail[1] == device.dev_eui and detail[2] == device.member

    # The worker kept going: a good uplink after them is stored.
    publish(platform_db, [(topic, good)])
    wait_for(lambda: stored_count(admin, [body["deduplicationId"]]) == 1, what="good uplink")


def test_status_and_join_events_update_the_device(
    platform_db: Any, admin: psycopg.Connection, worker: Worker, receiver: Any, simulator: Any
) -> None:
    device = next(d for d in simulator.devices if d.member == "beta")
    device.state["battery"] = 42
    join = simulator.join(device)
    status = simulator.status(device)
    up = simulator.uplink(device)
    publish(platform_db, [join, status, up])
    state = wait_for(lambda: admin.execute(
        "SELECT battery_level, margin, last_f_cnt, last_seen FROM tenant_beta.device_state"
        " WHERE dev_eui = %s AND battery_level = 42 AND last_f_cnt = 1", (device.dev_eui,)
    ).fetchone(), what="device state updated")
    assert state[1] == json.loads(status[1])["margin"]
    kinds = admin.execute(
        "SELECT kind FROM tenant_beta.device_events"
        " WHERE dev_eui = %s AND time >= now() - interval '1 minute'",
        (device.dev_eui,),
    ).fetchall()
    assert {"join", "status"} <= {k for (k,) in kinds}


def test_receivers_sharing_the_subscription_each_get_a_part_and_nothing_twice(
    platform_db: Any, admin: psycopg.Connection, worker: Worker, simulator: Any
) -> None:
    """HV_MQTT_SHARED_GROUP: two receivers (as on two hosts), each with its own persistent
    session; every uplink is delivered to one of them and stored once."""
    events = uplinks(simulator, per_device=30)
    ids = [dedup_id(p) for _, p in events]
    shared = [platform_db.model_copy(update={"mqtt_shared_group": "receivers",
                                             "mqtt_client_id": f"hv-test-receiver-{n}"})
              for n in (1, 2)]
    from typer.testing import CliRunner

    from hypervision.cli import app

    receivers = [make_receiver(s) for s in shared]
    try:
        publish(platform_db, events)
        wait_for(lambda: stored_count(admin, ids) == len(ids), what="all uplinks stored")
        wait_for(lambda: sum(r.received for r in receivers) >= len(events),
                 what="every event received")
    finally:
        for r in receivers:
            r.stop()
        # Or the broker keeps queueing their share of what later tests publish.
        for s in shared:
            dropped = CliRunner().invoke(app, ["forget-receiver", s.mqtt_client_id, "--yes"])
            assert dropped.exit_code == 0, dropped.output
    assert sum(r.received for r in receivers) == len(events)
    assert all(r.received > 0 for r in receivers), [r.received for r in receivers]
    assert uplinks_by_member(admin, ids) == {"alpha": 90, "beta": 90}
    assert admin.execute(
        "SELECT count(*) FROM (SELECT deduplication_id FROM tenant_alpha.uplinks"
        " WHERE deduplication_id = ANY(%s::uuid[]) GROUP BY 1 HAVING count(*) > 1) twice",
        (ids,)).fetchone() == (0,)
