"""What the public side may know about members and devices, read from the hv.public_* views.

The views (migrations/control/0030_public_ids_and_views.sql) are the only thing the public
role can read: no DevEUI, no codec variables, no users, no readings, and no address for a
water meter. Everything citizens see (pages, register, labels) is built from these records,
so a field that is not in a view cannot leak onto a page by mistake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

SELECT_DEVICES = (
    "SELECT public_id, member_slug, name, active, model_id, vendor, model, category,"
    " model_description, metrics, data_class, purpose, public_description, installed_on,"
    " address, building, legal_basis, area FROM hv.public_devices"
)
SELECT_MEMBERS = (
    "SELECT slug, name, kind, siren, suspended, dpo, retention, recipients, legal_bases"
    " FROM hv.public_members"
)


@dataclass(frozen=True)
class PublicDevice:
    """One device as the public may see it (a row of hv.public_devices)."""

    public_id: str
    member_slug: str
    name: str
    active: bool
    model_id: str
    vendor: str
    model: str
    category: str
    model_description: str
    metrics: list[str]
    data_class: str
    purpose: str
    public_description: str
    installed_on: dt.date | None
    address: str | None
    building: str | None
    legal_basis: str | None
    area: str | None


@dataclass(frozen=True)
class Recipient:
    name: str
    third_party: bool


@dataclass(frozen=True)
class PublicMember:
    """One member collectivité as the public may see it (a row of hv.public_members)."""

    slug: str
    name: str
    kind: str
    siren: str | None
    suspended: bool
    dpo: dict[str, Any] | None
    retention: dict[str, int]
    recipients: list[Recipient] = field(default_factory=list)
    legal_bases: dict[str, str] | None = None

    def retention_days(self, data_class: str) -> int | None:
        value = self.retention.get(data_class)
        return int(value) if value is not None else None


def _member(row: dict[str, Any]) -> PublicMember:
    return PublicMember(
        slug=row["slug"], name=row["name"], kind=row["kind"], siren=row["siren"],
        suspended=row["suspended"], dpo=row["dpo"],
        retention={str(k): int(v) for k, v in (row["retention"] or {}).items()},
        recipients=[Recipient(r["name"], bool(r["third_party"])) for r in row["recipients"]],
        legal_bases=row["legal_bases"],
    )


def device(conn: psycopg.Connection, public_id: str) -> PublicDevice | None:
    with conn.cursor(row_factory=class_row(PublicDevice)) as cur:
        cur.execute(
            SELECT_DEVICES + " WHERE public_id = %s", (public_id,),
        )
        return cur.fetchone()


def member_devices(conn: psycopg.Connection, slug: str, active_only: bool = True
                   ) -> list[PublicDevice]:
    with conn.cursor(row_factory=class_row(PublicDevice)) as cur:
        cur.execute(
            SELECT_DEVICES
            + " WHERE member_slug = %s AND (active OR NOT %s) ORDER BY name, public_id",
            (slug, active_only),
        )
        return cur.fetchall()


def member(conn: psycopg.Connection, slug: str) -> PublicMember | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(SELECT_MEMBERS + " WHERE slug = %s", (slug,))
        row = cur.fetchone()
    return _member(row) if row else None


def network_operator(conn: psycopg.Connection) -> str | None:
    """The name of the syndicate running the network, when it is itself a declared member."""
    row = conn.execute(
        "SELECT name FROM hv.public_members WHERE kind = 'syndicate' ORDER BY slug LIMIT 1"
    ).fetchone()
    return row[0] if row else None
