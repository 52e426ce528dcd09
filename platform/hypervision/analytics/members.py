"""Members as analytics sees them: their schema, their devices, their settings.

`sync` copies a member's devices (from the shared catalogue) and its analytics settings
(the `analytics:` and `alerts:` of its tenant file, as `tenants apply` stored them in
hv.members.spec) into its own schema, where views and the member's read-only role
can reach them. It needs superuser connections: to the primary, which holds the catalogue,
and to the member's server (hypervision.placement; the same connection for a member on the
primary). Everything else in this package reads the member's schema only, so the API can
call it with the member's read-only role on the member's server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision.analytics.config import MemberAnalytics, for_member, parse
from hypervision.roles import member_role


@dataclass(frozen=True)
class Member:
    slug: str
    schema: str
    spec: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    server: str | None = None  # the database server of its schema; None: the primary

    @property
    def owner(self) -> str:
        return member_role(self.slug, "owner")


@dataclass(frozen=True)
class Device:
    """A device of the member's `analytics_devices` table."""

    dev_eui: str
    name: str
    model_id: str
    category: str
    building: str | None
    room: str | None
    typical_interval_s: int
    variables: dict[str, str]

    def number(self, name: str) -> float | None:
        """A numeric per-device variable (e.g. index_rollover_l), None when unset or bad."""
        try:
            return float(self.variables[name])
        except (KeyError, TypeError, ValueError):
            return None


def members(admin: psycopg.Connection, slug: str | None = None) -> list[Member]:
    """Members of the catalogue (one, when `slug` is given), with their tenant spec and
    server; `admin` is on the primary."""
    rows = admin.execute(
        "SELECT slug, schema_name, spec, server FROM hv.members"
        " WHERE %(slug)s::text IS NULL OR slug = %(slug)s ORDER BY slug",
        {"slug": slug},
    ).fetchall()
    return [Member(r[0], r[1], r[2] or {}, r[3]) for r in rows]


def member(admin: psycopg.Connection, slug: str) -> Member:
    found = members(admin, slug)
    if not found:
        raise LookupError(f"no member '{slug}' (see `hypervision tenants plan`)")
    return found[0]


# What analytics keeps of each device, read from the catalogue on the primary.
_CATALOGUE = """
    SELECT d.dev_eui, d.name, d.model_id, m.category,
           coalesce(d.spec ->> 'data_class', 'technical'),
           d.spec -> 'location' ->> 'building', d.spec -> 'location' ->> 'room',
           d.spec -> 'location' ->> 'address',
           (d.spec -> 'location' ->> 'lat')::float8,
           (d.spec -> 'location' ->> 'lon')::float8,
           coalesce((m.spec ->> 'typical_interval_s')::integer, 3600),
           d.variables, d.active, (d.spec ->> 'installed_on')::date
    FROM hv.devices d JOIN hv.device_models m ON m.id = d.model_id
    WHERE d.member_slug = %s
"""
_COLUMNS = ("dev_eui", "name", "model_id", "category", "data_class", "building", "room",
            "address", "lat", "lon", "typical_interval_s", "variables", "active",
            "installed_on")


def sync(
    admin: psycopg.Connection, m: Member, conn: psycopg.Connection | None = None
) -> MemberAnalytics:
    """Copy the member's devices and settings into its schema; return the settings.

    `admin` is on the primary (the catalogue), `conn` on the member's server (default:
    `admin`, for a member on the primary). The settings come from `m.spec`, the member's
    row of hv.members as read by `members` or `member`. Writes only rows that changed, so
    running it at every refresh costs a few reads.
    """
    conn = admin if conn is None else conn
    config = for_member(m.slug, m.spec)
    s = sql.Identifier(m.schema)
    # What the member's devices and their models look like now, in one line: when it
    # matches the last copy's, the devices need no copying (a member may have tens of
    # thousands of devices, and this runs every minute).
    mark_row = admin.execute(
        """
        SELECT concat_ws('|', count(*), max(d.updated_at), max(m.updated_at),
                         bool_and(d.active))
        FROM hv.devices d JOIN hv.device_models m ON m.id = d.model_id
        WHERE d.member_slug = %s
        """,
        (m.slug,),
    ).fetchone()
    mark = mark_row[0] if mark_row else ""
    with conn.transaction():
        previous = conn.execute(
            sql.SQL("SELECT catalogue_mark FROM {s}.analytics_settings WHERE id = 1").format(s=s)
        ).fetchone()
        conn.execute(
            sql.SQL(
                """
                INSERT INTO {s}.analytics_settings AS a (id, config) VALUES (1, %(config)s)
                ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()
                WHERE a.config IS DISTINCT FROM EXCLUDED.config
                """
            ).format(s=s),
            {"config": Jsonb(config.model_dump(mode="json"))},
        )
        if previous is not None and previous[0] == mark:
            return config
        # The catalogue's rows, through a temporary table on the member's server: the
        # catalogue may be on another server than the member's schema.
        rows = admin.execute(_CATALOGUE, (m.slug,)).fetchall()
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE catalogue_devices ON COMMIT DROP AS"
                    " SELECT {} FROM {s}.analytics_devices WITH NO DATA").format(
                sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), s=s))
        with conn.cursor().copy(
            sql.SQL("COPY catalogue_devices ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
        ) as copy:
            for row in rows:
                copy.write_row((*row[:11], Jsonb(row[11]) if row[11] is not None else None,
                                *row[12:]))
        conn.execute(
            sql.SQL(
                """
                INSERT INTO {s}.analytics_devices AS a
                    (dev_eui, name, model_id, category, data_class, building, room, address,
                     lat, lon, typical_interval_s, variables, active, installed_on)
                SELECT dev_eui, name, model_id, category, data_class, building, room,
                       address, lat, lon, typical_interval_s, variables, active, installed_on
                FROM catalogue_devices
                ON CONFLICT (dev_eui) DO UPDATE SET
                    name = EXCLUDED.name, model_id = EXCLUDED.model_id,
                    category = EXCLUDED.category, data_class = EXCLUDED.data_class,
                    building = EXCLUDED.building, room = EXCLUDED.room,
                    address = EXCLUDED.address, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                    typical_interval_s = EXCLUDED.typical_interval_s,
                    variables = EXCLUDED.variables, active = EXCLUDED.active,
                    installed_on = EXCLUDED.installed_on, synced_at = now()
                WHERE (a.name, a.model_id, a.category, a.data_class, a.building, a.room,
                       a.address, a.lat, a.lon, a.typical_interval_s, a.variables, a.active,
                       a.installed_on)
                   IS DISTINCT FROM
                      (EXCLUDED.name, EXCLUDED.model_id, EXCLUDED.category, EXCLUDED.data_class,
                       EXCLUDED.building, EXCLUDED.room, EXCLUDED.address, EXCLUDED.lat,
                       EXCLUDED.lon, EXCLUDED.typical_interval_s, EXCLUDED.variables,
                       EXCLUDED.active, EXCLUDED.installed_on)
                """
            ).format(s=s)
        )
        # A device that left the member (moved, or deleted from the catalogue) stays
        # listed for its history, inactive.
        conn.execute(
            sql.SQL(
                """
                UPDATE {s}.analytics_devices a SET active = false, synced_at = now()
                WHERE a.active AND NOT EXISTS (
                    SELECT 1 FROM catalogue_devices c WHERE c.dev_eui = a.dev_eui)
                """
            ).format(s=s)
        )
        conn.execute(
            sql.SQL("UPDATE {s}.analytics_settings SET catalogue_mark = %s WHERE id = 1").format(
                s=s),
            (mark,),
        )
        # Inside a caller's transaction (`tenants apply` copies every member in one), the
        # commit that drops it is the caller's: the next member's copy needs the name.
        conn.execute("DROP TABLE catalogue_devices")
    return config


def settings_of(conn: psycopg.Connection, schema: str) -> MemberAnalytics:
    """The settings last copied into the member's schema (defaults before the first sync).

    Works with the member's read-only role."""
    row = conn.execute(
        sql.SQL("SELECT config FROM {}.analytics_settings WHERE id = 1").format(
            sql.Identifier(schema))
    ).fetchone()
    return parse(row[0] if row else {}, f"{schema}.analytics_settings")


def devices(
    conn: psycopg.Connection, schema: str, category: str | None = None,
    dev_euis: list[str] | None = None,
) -> dict[str, Device]:
    """The member's devices known to analytics, by DevEUI (inactive ones included)."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT dev_eui, name, model_id, category, building, room, typical_interval_s,
                   variables
            FROM {}.analytics_devices
            WHERE (%(category)s::text IS NULL OR category = %(category)s)
              AND (%(euis)s::text[] IS NULL OR dev_eui = ANY(%(euis)s))
            ORDER BY dev_eui
            """
        ).format(sql.Identifier(schema)),
        {"category": category, "euis": dev_euis},
    ).fetchall()
    return {
        r[0]: Device(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                     {str(k): str(v) for k, v in (r[7] or {}).items()})
        for r in rows
    }

