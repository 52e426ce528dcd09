"""Helpers for pipeline tests: publish events, read what was stored."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from hypervision.demo import publish_stream
from hypervision.settings import Settings


def publish(settings: Settings, items: Iterable[tuple[str, bytes]]) -> int:
    return publish_stream(settings, iter(items), rate=0, stop=threading.Event(),
                          client_id=f"test-publisher-{uuid.uuid4().hex[:8]}")


def broker_held_messages(settings: Settings, timeout: float = 30.0) -> int:
    """How many messages the broker holds in its store (queued for absent persistent
    sessions, retained, in flight), as it last said on `$SYS/broker/store/messages/count`
    (published every 10 s by default)."""
    import paho.mqtt.client as mqtt

    said: list[int] = []
    heard = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        said.append(int(message.payload))
        heard.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"test-sys-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/store/messages/count")
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    try:
        if not heard.wait(timeout):
            raise TimeoutError("the broker said nothing on $SYS/broker/store/messages/count")
    finally:
        client.disconnect()
        client.loop_stop()
    return said[-1]


def dedup_id(payload: bytes) -> str:
    return json.loads(payload)["deduplicationId"]


def uplinks_by_member(admin: psycopg.Connection, ids: list[str]) -> dict[str, int]:
    """How many of these deduplication ids each member schema holds (members holding
    none are left out)."""
    counts = {}
    # The members on this server (tests/scale places others on a second one).
    for slug, schema in admin.execute(
            "SELECT slug, schema_name FROM hv.members WHERE server IS NULL").fetchall():
        count = admin.execute(
            sql.SQL("SELECT count(*) FROM {}.uplinks WHERE deduplication_id = ANY(%s::uuid[])")
            .format(sql.Identifier(schema)), (ids,)
        ).fetchone()[0]
        if count:
            counts[slug] = count
    return counts


def stored_count(admin: psycopg.Connection, ids: list[str]) -> int:
    return sum(uplinks_by_member(admin, ids).values())


def measurements_of(admin: psycopg.Connection, schema: str, dedup: str) -> dict[str, Any]:
    rows = admin.execute(
        sql.SQL("SELECT metric, value, unit FROM {}.measurements WHERE deduplication_id = %s")
        .format(sql.Identifier(schema)), (dedup,)
    ).fetchall()
    return {metric: (value, unit) for metric, value, unit in rows}


def publish_at(settings: Settings, items: list[tuple[str, bytes]], rate: float) -> int:
    """Publish at `rate` per second, as a gateway's network server would: through a broker
    restart too (the client reconnects and sends again what was not acknowledged)."""
    return publish_stream(settings, iter(items), rate=rate, stop=threading.Event(),
                          client_id=f"test-publisher-{uuid.uuid4().hex[:8]}")
