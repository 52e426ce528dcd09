"""Incidents the platform opens itself (docs/syndicate.md, "Incidents opened by the
platform"). Each detector looks at what the platform already records and, when something
is wrong, opens an incident with an `auto_key` naming the occurrence, so that a detector
that keeps firing opens one incident, not one a minute:

- `audit_chain`: `audit.verify` finds a break in the audit trail (key: the first break);
- `backup_missing`: a full backup has run before, but none for HV_INCIDENT_BACKUP_MAX_AGE_
  HOURS (a failed nightly backup writes no `backup.run` entry; key: the last one's id);
- `ingestion_stopped`: uplinks arrived in the past day, none for HV_INCIDENT_INGEST_
  SILENCE_MINUTES (key: the time of the last one);
- `export_jump`: a member's rows exported over the last 24 h (audit entries `export.*`)
  exceed HV_INCIDENT_EXPORT_JUMP_FACTOR times its daily average over the 30 days before,
  and HV_INCIDENT_EXPORT_JUMP_MIN_ROWS (key: member and day).
"""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

from hypervision import audit, placement
from hypervision.accounts import Who
from hypervision.settings import Settings
from hypervision.syndicate import incidents

DETECTOR = Who("system:incidents", source="job")


def audit_chain(conn: psycopg.Connection, now: dt.datetime) -> int | None:
    result = audit.verify(conn, max_problems=5)
    if result.ok:
        return None
    first = result.problems[0]
    return incidents.open_incident(
        conn, DETECTOR, member=None, title="La chaîne d'audit ne se vérifie plus",
        description="; ".join(str(p) for p in result.problems), detected_at=now,
        severity="critical", systems=["hypervision"], source="audit_chain",
        auto_key=f"audit-chain:{first.entry_id}:{first.what[:80]}")


def backup_missing(conn: psycopg.Connection, settings: Settings,
                   now: dt.datetime) -> int | None:
    row = conn.execute(
        "SELECT id, at FROM hv.audit_log WHERE action = 'backup.run' AND member_slug IS NULL"
        " ORDER BY id DESC LIMIT 1").fetchone()
    if row is None or now - row[1] < dt.timedelta(hours=settings.incident_backup_max_age_hours):
        return None
    return incidents.open_incident(
        conn, DETECTOR, member=None, title="Sauvegarde complète manquante",
        description=f"Dernière sauvegarde complète : {row[1]:%Y-%m-%d %H:%M} UTC.",
        detected_at=now, severity="high", systems=["hypervision"], source="backup",
        auto_key=f"backup-missing:{row[0]}")


def last_uplink(servers: placement.Connections, now: dt.datetime) -> dt.datetime | None:
    """The latest reception time of an uplink of the past day, over every member, each
    read on its database server."""
    latest: dt.datetime | None = None
    for schema, server in servers.get(None).execute(
            "SELECT schema_name, server FROM hv.members").fetchall():
        row = servers.get(server).execute(
            sql.SQL("SELECT max(received_at) FROM {} WHERE time > %s").format(
                sql.Identifier(schema, "uplinks")),
            (now - dt.timedelta(days=1),)).fetchone()
        if row and row[0] is not None and (latest is None or row[0] > latest):
            latest = row[0]
    return latest


def ingestion_stopped(conn: psycopg.Connection, settings: Settings,
                      now: dt.datetime) -> int | None:
    with placement.Connections(settings, conn) as servers:
        latest = last_uplink(servers, now)
    silence = dt.timedelta(minutes=settings.incident_ingest_silence_minutes)
    if latest is None or now - latest < silence:
        return None
    return incidents.open_incident(
        conn, DETECTOR, member=None, title="L'ingestion des messages est arrêtée",
        description=f"Aucun message reçu depuis le {latest:%Y-%m-%d %H:%M} UTC.",
        detected_at=latest + silence, severity="high",
        systems=["core-network", "hypervision"], source="ingestion",
        auto_key=f"ingest-stopped:{latest.isoformat()}")


def export_jump(conn: psycopg.Connection, settings: Settings,
                now: dt.datetime) -> list[int]:
    rows = conn.execute(
        """
        SELECT member_slug,
               coalesce(sum(rows) FILTER (WHERE at > %(now)s - interval '1 day'), 0),
               coalesce(sum(rows) FILTER (WHERE at <= %(now)s - interval '1 day'), 0) / 30.0
        FROM hv.audit_log
        WHERE action LIKE 'export.%%' AND member_slug IS NOT NULL AND rows IS NOT NULL
          AND at > %(now)s - interval '31 days' AND at <= %(now)s
        GROUP BY member_slug
        """,
        {"now": now}).fetchall()
    opened: list[int] = []
    for member, today, average in rows:
        if today < settings.incident_export_jump_min_rows:
            continue
        if today <= float(average) * settings.incident_export_jump_factor:
            continue
        found = incidents.open_incident(
            conn, DETECTOR, member=member, title="Volume d'export inhabituel",
            description=f"{today} lignes exportées en 24 h, pour une moyenne de"
                        f" {float(average):.0f} par jour sur les 30 jours précédents.",
            detected_at=now, severity="high", systems=["hypervision"], source="export",
            auto_key=f"export-jump:{member}:{now.date().isoformat()}")
        if found is not None:
            opened.append(found)
    return opened


def detect(conn: psycopg.Connection, settings: Settings, now: dt.datetime, *,
           verify_audit: bool = False) -> list[int]:
    """Run every detector; the audit chain (a full recomputation) only when asked."""
    opened = [i for i in (backup_missing(conn, settings, now),
                          ingestion_stopped(conn, settings, now)) if i is not None]
    opened += export_jump(conn, settings, now)
    if verify_audit:
        found = audit_chain(conn, now)
        if found is not None:
            opened.append(found)
    return opened
