"""Intervention requests to the network's suppliers and their SLA report
(docs/syndicate.md, "Suppliers and SLAs").

Suppliers are declared in network/suppliers.yaml with the bricks they serve and their
promise: on site within `intervention_hours` (two hours for the network's bricks) of
being notified. A request is opened on an incident (`request`), then records the
supplier's arrival (`arrive`) and the resolution (`resolve`); each step is audited.

The report of a quarter (requests notified in it, UTC) gives per supplier:
1. requests `met`: arrived within the promise;
2. `breaches`: arrived late, or not arrived when the promise ran out (at the report's
   `now`), each listed with its delay;
3. `pending`: not arrived, promise still running: in neither count;
4. the share met = met / (met + breaches), None when both are zero.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hypervision import audit
from hypervision.accounts import Who
from hypervision.syndicate import incidents
from hypervision.syndicate.spec import Suppliers


class InterventionError(Exception):
    """Unknown supplier or request, a brick the supplier does not serve, a wrong order."""


def request(conn: psycopg.Connection, who: Who, suppliers: Suppliers, *, incident_id: int,
            supplier: str, notified_at: dt.datetime, brick: str | None = None,
            note: str = "") -> int:
    try:
        s = suppliers.get(supplier)
    except LookupError as exc:
        raise InterventionError(str(exc)) from None
    brick = brick or s.bricks[0]
    if brick not in s.bricks:
        raise InterventionError(f"{supplier} does not serve {brick} ({', '.join(s.bricks)})")
    incident = incidents.get(conn, incident_id)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """INSERT INTO hv.interventions (incident_id, supplier, brick, promised_hours,
                                             notified_at, note)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (incident_id, supplier, brick, s.intervention_hours, notified_at, note),
        ).fetchone()
        assert row is not None
        _audit(conn, who, "intervention.request", incident["member_slug"], row, None)
    return int(row["id"])


def _audit(conn: psycopg.Connection, who: Who, action: str, member: str | None,
           row: dict[str, Any], before: Any) -> None:
    audit.record(conn, actor=who.actor, member=member, action=action,
                 target=f"intervention:{row['id']}", source=who.source, before=before,
                 after=row, request_id=who.request_id, remote_addr=who.remote_addr)


def _set(conn: psycopg.Connection, who: Who, intervention_id: int, column: str,
         at: dt.datetime) -> dict[str, Any]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = cur.execute(
            "SELECT i.*, n.member_slug FROM hv.interventions i JOIN hv.incidents n"
            " ON n.id = i.incident_id WHERE i.id = %s FOR UPDATE OF i",
            (intervention_id,)).fetchone()
        if before is None:
            raise InterventionError(f"no intervention {intervention_id}")
        if column == "arrived_at" and at < before["notified_at"]:
            raise InterventionError("arrival before notification")
        if column == "resolved_at" and (before["arrived_at"] is None
                                        or at < before["arrived_at"]):
            raise InterventionError("resolution before arrival")
        if column == "arrived_at":
            row = cur.execute("UPDATE hv.interventions SET arrived_at = %s WHERE id = %s"
                              " RETURNING *", (at, intervention_id)).fetchone()
        else:
            row = cur.execute("UPDATE hv.interventions SET resolved_at = %s WHERE id = %s"
                              " RETURNING *", (at, intervention_id)).fetchone()
        assert row is not None
        _audit(conn, who, f"intervention.{column.removesuffix('_at')}", before["member_slug"],
               row, {column: before[column]})
        return row


def arrive(conn: psycopg.Connection, who: Who, intervention_id: int,
           at: dt.datetime) -> dict[str, Any]:
    return _set(conn, who, intervention_id, "arrived_at", at)


def resolve(conn: psycopg.Connection, who: Who, intervention_id: int,
            at: dt.datetime) -> dict[str, Any]:
    return _set(conn, who, intervention_id, "resolved_at", at)


def quarter_bounds(text: str) -> tuple[dt.datetime, dt.datetime]:
    """'2026Q1' → [1 January, 1 April) UTC."""
    try:
        year, q = int(text[:4]), int(text.upper().split("Q")[1])
        if not 1 <= q <= 4 or len(text) != 6:
            raise ValueError
    except (ValueError, IndexError):
        raise InterventionError(f"{text!r} is not a quarter like 2026Q1") from None
    start = dt.datetime(year, 3 * q - 2, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=dt.UTC)
    return start, end


@dataclass(frozen=True)
class Breach:
    intervention_id: int
    incident_id: int
    notified_at: dt.datetime
    arrived_at: dt.datetime | None
    promised_hours: float
    delay: dt.timedelta  # notification to arrival (to `now` when not arrived)


@dataclass
class SupplierSla:
    supplier: str
    label: str
    requests: int = 0
    met: int = 0
    pending: int = 0
    breaches: list[Breach] = field(default_factory=list)

    @property
    def share_met(self) -> float | None:
        judged = self.met + len(self.breaches)
        return self.met / judged if judged else None


def sla_report(conn: psycopg.Connection, suppliers: Suppliers, quarter: str,
               now: dt.datetime) -> list[SupplierSla]:
    """Steps 1-4 of the module docstring, one entry per declared supplier."""
    start, end = quarter_bounds(quarter)
    report = {s.name: SupplierSla(s.name, s.label) for s in suppliers.suppliers}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM hv.interventions WHERE notified_at >= %s AND notified_at < %s"
            " ORDER BY notified_at, id", (start, end)).fetchall()
    for r in rows:
        entry = report.setdefault(r["supplier"], SupplierSla(r["supplier"], r["supplier"]))
        entry.requests += 1
        promise = dt.timedelta(hours=r["promised_hours"])
        reached = r["arrived_at"] or now
        delay = reached - r["notified_at"]
        if r["arrived_at"] is not None and delay <= promise:
            entry.met += 1
        elif r["arrived_at"] is None and delay <= promise:
            entry.pending += 1
        else:
            entry.breaches.append(Breach(r["id"], r["incident_id"], r["notified_at"],
                                         r["arrived_at"], r["promised_hours"], delay))
    return list(report.values())


def to_csv(quarter: str, report: list[SupplierSla]) -> str:
    """One row per supplier (kind `supplier`), then one per breach (kind `breach`)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["quarter", "kind", "supplier", "requests", "met", "breaches", "pending",
                "share_met", "intervention", "incident", "notified_at", "arrived_at",
                "delay_minutes", "promised_hours"])
    for s in report:
        share = "" if s.share_met is None else f"{s.share_met:.4f}"
        w.writerow([quarter, "supplier", s.supplier, s.requests, s.met, len(s.breaches),
                    s.pending, share, "", "", "", "", "", ""])
    for s in report:
        for b in s.breaches:
            w.writerow([quarter, "breach", s.supplier, "", "", "", "", "", b.intervention_id,
                        b.incident_id, b.notified_at.isoformat(),
                        b.arrived_at.isoformat() if b.arrived_at else "",
                        int(b.delay.total_seconds() // 60), b.promised_hours])
    return out.getvalue()
