"""Downlinks: encode a command for a device, enqueue it in ChirpStack, follow its life.

A downlink is `queued` once ChirpStack accepted it (DeviceService.Enqueue returns the
queue item id), `sent` when a `txack` event names that id (a gateway transmitted it), then,
for confirmed downlinks, `acknowledged` or `not_acknowledged` when the `ack` event comes.
One never transmitted within HV_DOWNLINK_EXPIRY seconds becomes `expired` (`expire()`, run
by the periodic job hypervision.jobs.downlinks); a later txack still moves it to `sent`.
Ingestion stores those events in the member's `device_events`; `track()` (ingest.downlinks,
the pipeline's step after storing them) reads them and moves the member's `downlinks` rows
forward. Events are published independently by
ChirpStack, so an `ack` may be stored before its `txack`: the update does not depend on
their order. See infra/chirpstack/README.md, "Downlinks".

Every enqueue is recorded in the audit trail in the same transaction as its row. The row is
written by the connection's own role: the API's role, which holds INSERT of exactly
`REQUEST_COLUMNS` on each member's `downlinks` and nothing else of the schema
(`roles.grant_downlink_requests`, run by `tenants apply`), or the superuser for the CLI.
The members' writer roles only track downlinks (SELECT, UPDATE: tenant migration 0090).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from chirpstack_api import api
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from hypervision import placement
from hypervision.accounts import Who
from hypervision.chirpstack.client import ChirpStack, NotFound
from hypervision.chirpstack.encoders import Encoded, encoder_for
from hypervision.roles import DOWNLINK_REQUEST_COLUMNS
from ingest.downlinks import track

STATUSES = ("queued", "sent", "acknowledged", "not_acknowledged", "expired")
# The columns a request sets (the API role may insert these and nothing more).
REQUEST_COLUMNS = DOWNLINK_REQUEST_COLUMNS


class DownlinkError(Exception):
    """A downlink cannot be sent (inactive device, suspended member, not in ChirpStack)."""


class NotRecorded(DownlinkError):
    """ChirpStack queued the downlink but the platform could not record it."""


class DeviceNotFound(DownlinkError):
    """No such device, or not one of the caller's member (the same answer on purpose)."""


class NotPermitted(DownlinkError):
    """The connection's role may not record the member's downlinks (the API role before
    `tenants apply` granted it): nothing was sent."""


@dataclass(frozen=True, slots=True)
class Target:
    dev_eui: str
    member_slug: str
    schema: str
    model_id: str
    active: bool
    suspended: bool


@dataclass(slots=True)
class Downlink:
    """One row of a member's `downlinks` table."""

    queue_item_id: str
    dev_eui: str
    model_id: str
    command: str
    params: dict[str, Any]
    f_port: int
    data: bytes
    confirmed: bool
    status: str
    requested_by: str
    requested_at: datetime
    sent_at: datetime | None
    gateway_id: str | None
    f_cnt_down: int | None
    acked_at: datetime | None
    updated_at: datetime


_COLUMNS = sql.SQL(
    "queue_item_id::text AS queue_item_id, dev_eui, model_id, command, params, f_port, data,"
    " confirmed, status, requested_by, requested_at, sent_at, gateway_id, f_cnt_down,"
    " acked_at, updated_at"
)


def find_device(conn: psycopg.Connection, dev_eui: str) -> Target | None:
    row = conn.execute(
        """SELECT d.dev_eui, d.member_slug, m.schema_name, d.model_id, d.active, m.suspended
           FROM hv.devices d JOIN hv.members m ON m.slug = d.member_slug
           WHERE d.dev_eui = %s""",
        (dev_eui.strip().lower(),),
    ).fetchone()
    return Target(*row) if row else None


def resolve(conn: psycopg.Connection, dev_eui: str, member: str | None) -> Target:
    """The device, seen by a caller acting for `member` (None: a syndicate operator, who
    sees every member). Another member's device is not found, like a missing one."""
    target = find_device(conn, dev_eui)
    if target is None or (member is not None and target.member_slug != member):
        raise DeviceNotFound(f"device {dev_eui} not found")
    return target


def may_record(conn: psycopg.Connection, schema: str) -> bool:
    """May the connection's role insert `REQUEST_COLUMNS` into the member's `downlinks`?
    (The schema is checked first: naming a table in a schema without USAGE is an error.)"""
    row = conn.execute(
        """SELECT CASE WHEN has_schema_privilege(%(schema)s, 'USAGE') THEN
                      (SELECT bool_and(has_column_privilege(format('%%I.downlinks', %(schema)s),
                                                            c, 'INSERT'))
                       FROM unnest(%(columns)s::text[]) AS c)
                  ELSE false END""",
        {"schema": schema, "columns": list(REQUEST_COLUMNS)},
    ).fetchone()
    return bool(row and row[0])


def enqueue(
    conn: psycopg.Connection,
    client: ChirpStack,
    dev_eui: str,
    command: str,
    params: dict[str, Any],
    *,
    who: Who,
    member: str | None = None,
    confirmed: bool = True,
    member_conn: psycopg.Connection | None = None,
) -> Downlink:
    """Encode `command` for the device's model, enqueue it in ChirpStack, record it.

    `conn` is on the primary (the catalogue, the audit trail), `member_conn` on the
    member's database server (hypervision.placement; default `conn`), with the same role.

    1. Resolve the device for the caller's member; refuse removed devices and suspended
       members.
    2. Encode with the model's encoder (EncodeError for an unknown command or bad params).
    3. Check that the connection's role may record the row (NotPermitted otherwise): a
       command must not reach a device when it cannot be tracked.
    4. In one transaction: enqueue in ChirpStack, append the audit entry, insert the row
       (as the connection's role). If ChirpStack refuses, nothing is written; if the
       database fails after ChirpStack accepted, NotRecorded says the downlink went out
       untracked. A member on another server: its row commits there just before the
       audit entry on the primary.
    """
    mconn = conn if member_conn is None else member_conn
    target = resolve(conn, dev_eui, member)
    if not target.active:
        raise DownlinkError(f"device {target.dev_eui} was removed from {target.member_slug}")
    if target.suspended:
        raise DownlinkError(f"member {target.member_slug} is suspended")
    encoded, validated = encoder_for(target.model_id).encode(command, params)
    if not may_record(mconn, target.schema):
        raise NotPermitted(
            f"this role may not record downlinks of member {target.member_slug}: run"
            " `hypervision tenants apply`; nothing was sent")
    item = api.DeviceQueueItem(dev_eui=target.dev_eui, confirmed=confirmed,
                               f_port=encoded.f_port, data=encoded.data)
    with placement.transaction(conn, mconn):
        try:
            response = client.call("DeviceService", "Enqueue",
                                   api.EnqueueDeviceQueueItemRequest(queue_item=item))
        except NotFound:
            raise DownlinkError(
                f"device {target.dev_eui} is not in ChirpStack: run `hypervision chirpstack"
                " apply`") from None
        try:
            row = _record(conn, mconn, target, response.id, command, validated, encoded,
                          confirmed, who)
        except psycopg.Error as exc:
            raise NotRecorded(
                f"ChirpStack queued downlink {response.id} for {target.dev_eui}, but recording"
                f" it failed ({type(exc).__name__}: {exc}); it will not be tracked") from exc
    return row


def _record(conn: psycopg.Connection, member_conn: psycopg.Connection, target: Target,
            queue_item_id: str, command: str, params: dict[str, Any], encoded: Encoded,
            confirmed: bool, who: Who) -> Downlink:
    """The audit entry (on `conn`), then the member's row (on `member_conn`), in the
    caller's transactions.

    The API role may insert the row but not read it back, so the row returned is what was
    inserted plus the table's defaults: status `queued`, and `requested_at` and
    `updated_at` = now(), the transaction's start time, which RETURNING reads without
    reading the table (it names no column)."""
    record = {
        "queue_item_id": queue_item_id, "command": command, "params": params,
        "f_port": encoded.f_port, "data": encoded.data.hex(), "confirmed": confirmed,
    }
    who.record(conn, member=target.member_slug, action="downlink.enqueue",
               target=f"device:{target.dev_eui}", params={"command": command}, after=record)
    values = (queue_item_id, target.dev_eui, target.model_id, command, Jsonb(params),
              encoded.f_port, encoded.data, confirmed, who.actor)
    row = member_conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING now()").format(
            sql.Identifier(target.schema, "downlinks"),
            sql.SQL(", ").join(sql.Identifier(c) for c in REQUEST_COLUMNS),
            sql.SQL(", ").join(sql.Placeholder() for _ in REQUEST_COLUMNS)),
        values,
    ).fetchone()
    assert row is not None
    return Downlink(
        queue_item_id=queue_item_id, dev_eui=target.dev_eui, model_id=target.model_id,
        command=command, params=params, f_port=encoded.f_port, data=encoded.data,
        confirmed=confirmed, status="queued", requested_by=who.actor, requested_at=row[0],
        sent_at=None, gateway_id=None, f_cnt_down=None, acked_at=None, updated_at=row[0],
    )


def list_downlinks(conn: psycopg.Connection, schema: str, dev_eui: str | None = None,
                   limit: int = 50) -> list[Downlink]:
    """The latest downlinks of a member (of one device if given), newest first."""
    where = sql.SQL("WHERE dev_eui = %(dev)s") if dev_eui else sql.SQL("")
    with conn.cursor(row_factory=class_row(Downlink)) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {}.downlinks {} ORDER BY requested_at DESC LIMIT %(n)s")
            .format(_COLUMNS, sql.Identifier(schema), where),
            {"dev": dev_eui, "n": limit},
        )
        return cur.fetchall()


# Tracking from txack/ack events -------------------------------------------------------------

def expire(conn: psycopg.Connection, schema: str, after_s: int) -> int:
    """Mark `expired` the member's downlinks still `queued` (no txack) `after_s` seconds
    after their request; returns how many. Run it after `track`, so that a txack already
    stored wins."""
    cur = conn.execute(
        sql.SQL("UPDATE {}.downlinks SET status = 'expired', updated_at = now()"
                " WHERE status = 'queued' AND sent_at IS NULL"
                " AND requested_at < now() - make_interval(secs => %(after)s)")
        .format(sql.Identifier(schema)),
        {"after": after_s},
    )
    return cur.rowcount


def track_all(
    servers: placement.Connections, expire_after_s: int | None = None
) -> dict[str, int]:
    """`track` for every member, on its database server, then `expire` when
    `expire_after_s` is given; the number of downlinks that changed, per member."""
    changed = {}
    for slug, schema, server in servers.get(None).execute(
        "SELECT slug, schema_name, server FROM hv.members ORDER BY slug"
    ).fetchall():
        conn = servers.get(server)
        with conn.transaction():
            changed[slug] = track(conn, schema)
            if expire_after_s is not None:
                changed[slug] += expire(conn, schema, expire_after_s)
    return changed
