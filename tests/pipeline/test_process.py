"""The Processor against the real database, without MQTT or Celery: replays, decode
failures, and a bad event isolated from the rest of its batch."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from hypervision.db import connect_as
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.outcomes import Outcome
from ingest.process import Processor
from ingest.registry import Registry, load_entries
from tests.pipeline.helpers import stored_count

pytestmark = pytest.mark.services


@pytest.fixture
def processor(platform_db: Any) -> Any:
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        registry = Registry(lambda: load_entries(conn))
        yield conn, Processor(Catalogue.load(), registry, platform_db.max_payload_bytes,
                              platform_db.fcnt_guard_window)


def envelopes(items: list[tuple[str, bytes]]) -> list[Envelope]:
    return [Envelope.from_topic(t, p, time.time()) for t, p in items]


def test_processing_a_batch_twice_stores_it_once(processor: Any, simulator: Any,
                                                 admin: psycopg.Connection) -> None:
    conn, proc = processor
    items = [simulator.uplink(d) for d in simulator.devices for _ in range(3)]
    first = proc.process(conn, envelopes(items))
    again = proc.process(conn, envelopes(items))
    assert first.total(Outcome.STORED) == len(items)
    assert again.total(Outcome.DUPLICATE) == len(items)
    assert again.total(Outcome.STORED) == 0
    ids = [json.loads(p)["deduplicationId"] for _, p in items]
    assert stored_count(admin, ids) == len(items)


def test_a_replayed_frame_under_a_new_deduplication_id_is_a_duplicate(
    processor: Any, simulator: Any, admin: psycopg.Connection
) -> None:
    conn, proc = processor
    topic, payload = simulator.uplink(simulator.devices[0])
    replay = json.loads(payload)
    replay["deduplicationId"] = str(uuid.uuid4())
    first = proc.process(conn, envelopes([(topic, payload)]))
    second = proc.process(conn, envelopes([(topic, json.dumps(replay).encode())]))
    assert first.total(Outcome.STORED) == 1
    assert second.total(Outcome.DUPLICATE) == 1
    assert stored_count(admin, [replay["deduplicationId"]]) == 0

    # Within one batch too.
    topic, payload = simulator.uplink(simulator.devices[0])
    replay = dict(json.loads(payload), deduplicationId=str(uuid.uuid4()))
    both = proc.process(conn, envelopes([(topic, payload), (topic, json.dumps(replay).encode())]))
    assert (both.total(Outcome.STORED), both.total(Outcome.DUPLICATE)) == (1, 1)


def test_an_undecodable_frame_is_kept_raw_with_its_reason(
    processor: Any, simulator: Any, admin: psycopg.Connection
) -> None:
    conn, proc = processor
    device = next(d for d in simulator.devices if d.model_id == "milesight-em300-di")
    topic, payload = simulator.uplink(device)
    body = json.loads(payload)
    body["data"] = "/w=="  # 0xff: no channel the codec knows
    body.pop("object")
    result = proc.process(conn, envelopes([(topic, json.dumps(body).encode())]))
    assert result.total(Outcome.DECODE_FAILED) == 1
    schema = f"tenant_{device.member}"
    row = admin.execute(
        f"SELECT data, decode_error FROM {schema}.uplinks WHERE deduplication_id = %s",
        (body["deduplicationId"],),
    ).fetchone()
    assert bytes(row[0]) == b"\xff"
    assert row[1]
    # The operator sees it per device.
    errors, last = admin.execute(
        f"SELECT decode_errors, last_decode_error FROM {schema}.device_state WHERE dev_eui = %s",
        (device.dev_eui,),
    ).fetchone()
    assert errors >= 1 and last == row[1]
    from typer.testing import CliRunner

    from hypervision.cli import app

    listing = CliRunner().invoke(app, ["decode-errors", "--member", device.member],
                                 env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert device.dev_eui in listing.output


def test_one_event_the_database_refuses_does_not_hold_back_its_batch(
    processor: Any, simulator: Any, admin: psycopg.Connection
) -> None:
    conn, proc = processor
    items = [simulator.uplink(d) for d in simulator.devices]
    poisoned = json.loads(items[0][1])
    # Valid JSON and a valid event, but the decoded object goes to a jsonb column, and
    # jsonb cannot hold a NUL character.
    poisoned["object"]["note"] = "bad\u0000note"
    items[0] = (items[0][0], json.dumps(poisoned).encode())
    result = proc.process(conn, envelopes(items))
    assert result.total(Outcome.STORED) == len(items) - 1
    assert result.total(Outcome.STORE_FAILED) == 1
    reason = admin.execute(
        "SELECT reason, detail FROM hv.dead_letters WHERE payload = %s", (items[0][1],)
    ).fetchone()
    assert reason[0] == "store_failed" and "\\u0000" in reason[1]


def test_uplinks_count_on_the_day_the_network_received_them_not_the_day_processed(
    processor: Any, simulator: Any, admin: psycopg.Connection
) -> None:
    """History published late (the demo's backfill, a replay, a backlog after an outage)
    counts on its own days in the operator's uplinks per member and day; a time ahead of
    our own clock counts on the day we received it."""
    conn, proc = processor
    now = datetime.now(UTC)
    device = simulator.devices[0]
    # Days no other test publishes on (the other tests' uplinks are timed now).
    days_ago = {now - timedelta(days=47): 3, now - timedelta(days=13): 2}
    items = [simulator.uplink(device, at) for at, n in days_ago.items() for _ in range(n)]
    ahead = simulator.uplink(device, now + timedelta(days=3))
    received = time.time()
    today = datetime.fromtimestamp(received, UTC).date()
    before = dict(admin.execute(
        "SELECT day, sum(events) FROM hv_operator.events_per_member_day"
        " WHERE member_slug = %s AND event_type = 'up' AND outcome = 'stored'"
        " GROUP BY day", (device.member,)).fetchall())
    result = proc.process(conn, [Envelope.from_topic(t, p, received) for t, p in
                                 [*items, ahead]])
    assert result.total(Outcome.STORED) == len(items) + 1
    after = dict(admin.execute(
        "SELECT day, sum(events) FROM hv_operator.events_per_member_day"
        " WHERE member_slug = %s AND event_type = 'up' AND outcome = 'stored'"
        " GROUP BY day", (device.member,)).fetchall())
    added = {day: after[day] - before.get(day, 0) for day in after
             if after[day] != before.get(day, 0)}
    assert added == {(now - timedelta(days=47)).date(): 3, (now - timedelta(days=13)).date(): 2,
                     today: 1}
