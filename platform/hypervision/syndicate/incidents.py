"""The incident register of the syndicate and its members, with the clocks the law sets
(docs/syndicate.md, "Incidents and personal-data breaches").

An incident (`hv.incidents`) belongs to a member, or to the syndicate's shared service
itself (member NULL). Its clocks:

| clock | starts at | runs | when |
|---|---|---|---|
| `nis2-early-warning` | detection | 24 h | the incident is significant (NIS2 art. 23) |
| `nis2-notification` | detection | 72 h | significant |
| `nis2-final-report` | the notification (when filed, else its deadline) | one month | significant |
| `gdpr-notification` | awareness of a personal-data breach | 72 h | a breach (GDPR art. 33) |

A clock is `filed` once its report is recorded (`file`), else `pending`, or `overdue` past
its deadline. `check_clocks`, run every minute by the incidents job, opens an alert in
the member's alert table (the syndicate's for its own incidents) when a pending clock
has `HV_INCIDENT_WARNING_SHARE` of its time left (severity warning) and another when it
runs out (critical); the alert machinery e-mails the member's DPO and technical contact
and the syndicate's technical contact (hypervision.alerts.notify). Marking an incident
as a breach tells the member's DPO the same way. Every change is audited with the record
before and after, in the change's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hypervision import audit
from hypervision.accounts import Who

ClockName = Literal["nis2-early-warning", "nis2-notification", "nis2-final-report",
                    "gdpr-notification"]
CLOCKS: tuple[ClockName, ...] = ("nis2-early-warning", "nis2-notification",
                                 "nis2-final-report", "gdpr-notification")
CLOCK_FR = {
    "nis2-early-warning": "Alerte précoce NIS2 au CSIRT (24 h)",
    "nis2-notification": "Notification d'incident NIS2 au CSIRT (72 h)",
    "nis2-final-report": "Rapport final NIS2 (un mois)",
    "gdpr-notification": "Notification de violation à la CNIL (72 h)",
}
SEVERITIES = ("low", "medium", "high", "critical")
# Data classes whose devices each concern one data subject (a household's meter): the
# estimate of data subjects of a breach counts the member's devices of these classes.
PERSONAL_CLASSES = ("water-consumption", "energy")
EDITABLE = ("title", "description", "severity", "significant", "systems",
            "members_affected", "malicious", "cross_border", "data_classes",
            "data_subjects", "breach_nature")


class IncidentError(Exception):
    """Unknown incident, wrong state, unknown clock."""


@dataclass(frozen=True)
class Clock:
    name: ClockName
    label: str
    starts_at: dt.datetime
    due_at: dt.datetime
    filed_at: dt.datetime | None

    def left(self, now: dt.datetime) -> dt.timedelta:
        return self.due_at - now

    def status(self, now: dt.datetime) -> str:
        if self.filed_at is not None:
            return "filed" if self.filed_at <= self.due_at else "filed-late"
        return "overdue" if now >= self.due_at else "pending"

    def warn_at(self, share: float) -> dt.datetime:
        return self.due_at - (self.due_at - self.starts_at) * share


def _add_month(t: dt.datetime) -> dt.datetime:
    month = t.month % 12 + 1
    year = t.year + (t.month == 12)
    day = t.day
    while True:
        try:
            return t.replace(year=year, month=month, day=day)
        except ValueError:  # 31 March + 1 month: 30 April
            day -= 1


def clocks(incident: Mapping[str, Any], filings: Mapping[str, dt.datetime]) -> list[Clock]:
    """The incident's legal clocks (table in the module docstring)."""
    result: list[Clock] = []
    if incident["significant"]:
        t0 = incident["detected_at"]
        result.append(Clock("nis2-early-warning", CLOCK_FR["nis2-early-warning"], t0,
                            t0 + dt.timedelta(hours=24), filings.get("nis2-early-warning")))
        notification = Clock("nis2-notification", CLOCK_FR["nis2-notification"], t0,
                             t0 + dt.timedelta(hours=72), filings.get("nis2-notification"))
        result.append(notification)
        start = notification.filed_at or notification.due_at
        result.append(Clock("nis2-final-report", CLOCK_FR["nis2-final-report"], start,
                            _add_month(start), filings.get("nis2-final-report")))
    if incident["breach"]:
        t0 = incident["breach_known_at"]
        result.append(Clock("gdpr-notification", CLOCK_FR["gdpr-notification"], t0,
                            t0 + dt.timedelta(hours=72), filings.get("gdpr-notification")))
    return result


def get(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM hv.incidents WHERE id = %s", (incident_id,)).fetchone()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    return row


def filings(conn: psycopg.Connection, incident_id: int) -> dict[str, dt.datetime]:
    return dict(conn.execute(
        "SELECT clock, filed_at FROM hv.incident_filings WHERE incident_id = %s",
        (incident_id,)).fetchall())


def incident_clocks(conn: psycopg.Connection, incident_id: int) -> list[Clock]:
    return clocks(get(conn, incident_id), filings(conn, incident_id))


def listing(conn: psycopg.Connection, member: str | None = None, *,
            syndicate_only: bool = False, state: str | None = None) -> list[dict[str, Any]]:
    """Incidents newest first: a member's, or the syndicate's own (`syndicate_only`), or
    all (neither)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT * FROM hv.incidents
            WHERE (%(m)s::text IS NULL OR member_slug = %(m)s)
              AND (NOT %(own)s OR member_slug IS NULL)
              AND (%(state)s::text IS NULL OR state = %(state)s)
            ORDER BY detected_at DESC, id DESC
            """,
            {"m": member, "own": syndicate_only, "state": state},
        ).fetchall()


def _audit(conn: psycopg.Connection, who: Who, action: str, row: Mapping[str, Any],
           before: Any) -> None:
    audit.record(conn, actor=who.actor, member=row["member_slug"], action=action,
                 target=f"incident:{row['id']}", source=who.source, before=before,
                 after=dict(row), request_id=who.request_id, remote_addr=who.remote_addr)


def estimate_subjects(conn: psycopg.Connection, member: str | None,
                      data_classes: Sequence[str]) -> int:
    """Data subjects of a breach, estimated from devices: the member's active devices (all
    members' for the syndicate's own incidents) of the personal data classes named."""
    classes = [c for c in data_classes if c in PERSONAL_CLASSES]
    row = conn.execute(
        """SELECT count(*) FROM hv.devices WHERE active
             AND (%(m)s::text IS NULL OR member_slug = %(m)s)
             AND spec->>'data_class' = ANY(%(c)s)""",
        {"m": member, "c": classes},
    ).fetchone()
    return int(row[0]) if row else 0


def open_incident(
    conn: psycopg.Connection, who: Who, *, member: str | None, title: str,
    detected_at: dt.datetime, severity: str, description: str = "",
    significant: bool = False, systems: Sequence[str] = (),
    members_affected: Sequence[str] = (), source: str = "manual",
    auto_key: str | None = None,
) -> int | None:
    """Record an incident; returns its id, or None when `auto_key` is already recorded
    (a detector that keeps firing opens one incident)."""
    if severity not in SEVERITIES:
        raise IncidentError(f"severity must be one of {', '.join(SEVERITIES)}")
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """
            INSERT INTO hv.incidents (member_slug, title, description, detected_at, severity,
                significant, systems, members_affected, source, auto_key)
            VALUES (%(member)s, %(title)s, %(description)s, %(detected_at)s, %(severity)s,
                %(significant)s, %(systems)s, %(affected)s, %(source)s, %(key)s)
            ON CONFLICT (auto_key) DO NOTHING
            RETURNING *
            """,
            {"member": member, "title": title, "description": description,
             "detected_at": detected_at, "severity": severity, "significant": significant,
             "systems": list(systems),
             "affected": list(members_affected or ([member] if member else [])),
             "source": source, "key": auto_key},
        ).fetchone()
        if row is None:
            return None
        _audit(conn, who, "incident.open", row, None)
        return int(row["id"])


def _update(conn: psycopg.Connection, who: Who, incident_id: int, action: str,
            set_: Mapping[str, Any]) -> dict[str, Any]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = cur.execute("SELECT * FROM hv.incidents WHERE id = %s FOR UPDATE",
                             (incident_id,)).fetchone()
        if before is None:
            raise IncidentError(f"no incident {incident_id}")
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in set_)
        after = cur.execute(
            sql.SQL("UPDATE hv.incidents SET {}, updated_at = now() WHERE id = %(id)s"
                    " RETURNING *").format(assignments),
            {**set_, "id": incident_id},
        ).fetchone()
        assert after is not None
        changed = {k: before[k] for k in set_ if before[k] != after[k]}
        _audit(conn, who, action, after, changed)
        return after


def update(conn: psycopg.Connection, who: Who, incident_id: int,
           changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change the record's editable fields (EDITABLE)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise IncidentError(f"not editable: {sorted(unknown)}")
    if "severity" in changes and changes["severity"] not in SEVERITIES:
        raise IncidentError(f"severity must be one of {', '.join(SEVERITIES)}")
    values = {k: list(v) if isinstance(v, list | tuple) else v for k, v in changes.items()}
    return _update(conn, who, incident_id, "incident.update", values)


def mark_breach(conn: psycopg.Connection, who: Who, incident_id: int, *,
                known_at: dt.datetime, data_classes: Sequence[str],
                nature: Sequence[str] = ("confidentiality",),
                data_subjects: int | None = None) -> dict[str, Any]:
    """A personal-data breach: the GDPR clock starts at `known_at`; the data subjects are
    estimated from the member's devices unless given; the member's DPO is told."""
    incident = get(conn, incident_id)
    subjects = (estimate_subjects(conn, incident["member_slug"], data_classes)
                if data_subjects is None else data_subjects)
    row = _update(conn, who, incident_id, "incident.breach", {
        "breach": True, "breach_known_at": known_at, "data_classes": list(data_classes),
        "breach_nature": list(nature), "data_subjects": subjects})
    _raise(conn, row, "incident", "dpo", "critical",
           f"Violation de données personnelles (incident n°{row['id']}) : {row['title']}."
           f" Données : {', '.join(data_classes) or '?'} ; personnes concernées estimées :"
           f" {subjects}. Notification à la CNIL avant le"
           f" {_fr(known_at + dt.timedelta(hours=72))} (UTC).", known_at, dpo_only=True)
    return row


def add_action(conn: psycopg.Connection, who: Who, incident_id: int, text: str,
               at: dt.datetime) -> dict[str, Any]:
    """Append an action taken (containment, restoration, information of people...)."""
    actions = [*get(conn, incident_id)["actions"],
               {"at": at.isoformat(), "by": who.actor, "text": text}]
    return _update(conn, who, incident_id, "incident.action", {"actions": Jsonb(actions)})


def close(conn: psycopg.Connection, who: Who, incident_id: int,
          at: dt.datetime) -> dict[str, Any]:
    if get(conn, incident_id)["state"] == "closed":
        raise IncidentError(f"incident {incident_id} is closed already")
    return _update(conn, who, incident_id, "incident.close", {"state": "closed", "closed_at": at})


def file(conn: psycopg.Connection, who: Who, incident_id: int, clock: str,
         at: dt.datetime, reference: str = "") -> None:
    """Record that a clock's report was sent; its alerts close."""
    if clock not in CLOCKS:
        raise IncidentError(f"unknown clock '{clock}'; one of {', '.join(CLOCKS)}")
    incident = get(conn, incident_id)
    if clock not in {c.name for c in clocks(incident, {})}:
        raise IncidentError(f"incident {incident_id} has no clock '{clock}'")
    with conn.transaction():
        conn.execute(
            "INSERT INTO hv.incident_filings (incident_id, clock, filed_at, reference)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (incident_id, clock) DO UPDATE"
            " SET filed_at = EXCLUDED.filed_at, reference = EXCLUDED.reference",
            (incident_id, clock, at, reference))
        audit.record(conn, actor=who.actor, member=incident["member_slug"],
                     action="incident.file", target=f"incident:{incident_id}",
                     params={"clock": clock, "filed_at": at, "reference": reference},
                     source=who.source, request_id=who.request_id,
                     remote_addr=who.remote_addr)
        schema = _alert_schema(conn, incident)
        if schema is not None:
            conn.execute(
                sql.SQL("UPDATE {}.alerts SET state = 'closed', closed_at = now(),"
                        " closed_by = 'system', close_reason = 'rapport déposé'"
                        " WHERE rule = %s AND dev_eui LIKE %s AND state <> 'closed'").format(
                    sql.Identifier(schema)),
                (_rule(incident_id), f"{clock}%"))


# Alerts ---------------------------------------------------------------------------------


def _fr(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%d/%m/%Y %H:%M")


def _rule(incident_id: int) -> str:
    """The alert rule name of an incident: a colon, so no member's rule can be named so."""
    return f"incident:{incident_id}"


def _alert_schema(conn: psycopg.Connection, incident: Mapping[str, Any]) -> str | None:
    row = conn.execute(
        "SELECT schema_name FROM hv.members WHERE slug = %s OR (%s::text IS NULL AND kind ="
        " 'syndicate') ORDER BY slug LIMIT 1",
        (incident["member_slug"], incident["member_slug"])).fetchone()
    return row[0] if row else None


def recipients(conn: psycopg.Connection, member: str | None, *,
               dpo_only: bool = False) -> list[str]:
    """E-mails told about an incident: the member's DPO (and technical contact), and the
    syndicate's technical contact (its DPO for its own incidents)."""
    rows = conn.execute(
        "SELECT kind, slug, spec->'contacts' FROM hv.members WHERE slug = %s OR kind ="
        " 'syndicate' ORDER BY slug", (member,)).fetchall()
    found: list[str] = []
    for kind, slug, contacts in rows:
        contacts = contacts or {}
        roles = ["dpo"] if (slug == member or (member is None and kind == "syndicate")) else []
        if not dpo_only:
            roles.append("technical")
        for role in roles:
            email = (contacts.get(role) or {}).get("email")
            if email and email not in found:
                found.append(email)
    return found


def _raise(conn: psycopg.Connection, incident: Mapping[str, Any], condition: str, key: str,
           severity: str, message: str, since: dt.datetime, *, dpo_only: bool = False) -> bool:
    """Open one alert for (incident, key) unless one was ever opened; queue its e-mails."""
    schema = _alert_schema(conn, incident)
    if schema is None:
        return False
    s = sql.Identifier(schema)
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                """
                INSERT INTO {s}.alerts (rule, dev_eui, condition, severity, message, since,
                                        rule_spec)
                SELECT %(rule)s, %(key)s, %(condition)s, %(severity)s, %(message)s,
                       %(since)s, %(spec)s
                WHERE NOT EXISTS (SELECT 1 FROM {s}.alerts
                                  WHERE rule = %(rule)s AND dev_eui = %(key)s)
                ON CONFLICT DO NOTHING RETURNING id
                """
            ).format(s=s),
            {"rule": _rule(incident["id"]), "key": key, "condition": condition,
             "severity": severity, "message": message, "since": since,
             "spec": Jsonb({"incident": incident["id"], "key": key})},
        ).fetchone()
        if row is None:
            return False
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {}.alert_notifications (alert_id, channel, target)"
                        " VALUES (%s, 'email', %s) ON CONFLICT DO NOTHING").format(s),
                [(row[0], email) for email in recipients(
                    conn, incident["member_slug"], dpo_only=dpo_only)],
            )
    return True


@dataclass
class ClockCheck:
    warned: list[tuple[int, str]]
    overdue: list[tuple[int, str]]


def check_clocks(conn: psycopg.Connection, now: dt.datetime, warning_share: float) -> ClockCheck:
    """Open the warning and overdue alerts of every open incident's pending clocks."""
    result = ClockCheck([], [])
    for incident in listing(conn, state="open"):
        for c in clocks(incident, filings(conn, incident["id"])):
            if c.status(now) == "overdue":
                if _raise(conn, incident, "incident_deadline", f"{c.name}:overdue", "critical",
                          f"Incident n°{incident['id']} ({incident['title']}) : {c.label}"
                          f" — échéance dépassée depuis le {_fr(c.due_at)} (UTC).", c.due_at):
                    result.overdue.append((incident["id"], c.name))
            elif c.status(now) == "pending" and now >= c.warn_at(warning_share):
                left = c.left(now)
                hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
                if _raise(conn, incident, "incident_deadline", c.name, "warning",
                          f"Incident n°{incident['id']} ({incident['title']}) : {c.label}"
                          f" — échéance le {_fr(c.due_at)} (UTC), reste {hours} h"
                          f" {minutes:02d}.", c.warn_at(warning_share)):
                    result.warned.append((incident["id"], c.name))
    return result
