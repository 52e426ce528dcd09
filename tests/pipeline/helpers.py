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


def dedup_id(payload: bytes) -> str:
    return json.loads(payload)["deduplicationId"]


def uplinks_by_member(admin: psycopg.Connection, ids: list[str]) -> dict[str, int]:
    """How many of these deduplication ids each member schema holds (members holding
    none are left out)."""
    counts = {}
    for slug, schema in admin.execute("SELECT slug, schema_name FROM hv.members").fetchall():
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
