"""Radio coverage from the uplinks' reception reports (docs/syndicate.md, "Radio
coverage").

Every raw uplink keeps ChirpStack's event as received (`uplinks.event`), whose `rxInfo`
lists each gateway that heard the frame with its RSSI and SNR. Over a window:

1. per device and gateway (a link): frames heard, mean RSSI, mean and best SNR, last
   heard;
2. per device: the gateways that hear it (one only: the device is at risk, a single
   gateway's failure silences it) and its margin, the mean over its frames of the best
   gateway's SNR minus the SNR the frame's spreading factor needs to be demodulated
   (SF7 −7.5 dB ... SF12 −20 dB, the LoRa demodulation floors);
3. per gateway (declared in network/gateways.yaml or listed by ChirpStack): the devices
   it hears; a gateway hearing none serves no member.

`check_margins` opens an alert (`coverage_margin`, in the member's alert table, e-mailed
to its technical contact) for a device heard since the start of the last
HV_COVERAGE_MARGIN_DAYS days whose every frame in them had a margin under
HV_COVERAGE_MARGIN_DB, and closes it once a frame reaches the threshold again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision.accounts import PERSONAL_DATA_CLASSES
from hypervision.syndicate.spec import NetworkSpecError, load

# The SNR (dB) under which a LoRa frame cannot be demodulated, per spreading factor.
SF_FLOOR = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
RULE = "coverage:margin"
WITHHELD_NAME = "(personal data withheld)"
ConnectionFor = Callable[[str], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class Link:
    dev_eui: str
    gateway_id: str
    frames: int
    rssi_mean: float | None
    snr_mean: float | None
    snr_best: float | None
    last_heard: dt.datetime


@dataclass
class DeviceCoverage:
    member: str
    dev_eui: str
    name: str
    lat: float | None
    lon: float | None
    links: list[Link] = field(default_factory=list)
    margin_db: float | None = None
    personal: bool = False  # of a personal data class (a household's meter)

    @property
    def gateways(self) -> list[str]:
        return sorted(link.gateway_id for link in self.links)

    @property
    def at_risk(self) -> bool:
        return len(self.links) == 1


@dataclass
class GatewayCoverage:
    gateway_id: str
    name: str
    lat: float | None
    lon: float | None
    devices: list[str] = field(default_factory=list)


@dataclass
class Coverage:
    start: dt.datetime
    end: dt.datetime
    devices: list[DeviceCoverage]
    gateways: list[GatewayCoverage]

    @property
    def at_risk(self) -> list[DeviceCoverage]:
        return [d for d in self.devices if d.at_risk]

    @property
    def unheard(self) -> list[DeviceCoverage]:
        return [d for d in self.devices if not d.links]

    @property
    def idle_gateways(self) -> list[GatewayCoverage]:
        return [g for g in self.gateways if not g.devices]


_FRAMES = """
    SELECT u.dev_eui, u.deduplication_id, u.time, u.spreading_factor,
           lower(rx->>'gatewayId') AS gateway_id,
           (rx->>'rssi')::double precision AS rssi, (rx->>'snr')::double precision AS snr
    FROM {} u CROSS JOIN LATERAL json_array_elements(
        CASE WHEN json_typeof(u.event->'rxInfo') = 'array' THEN u.event->'rxInfo'
             ELSE '[]'::json END) AS rx
    WHERE u.time >= %s AND u.time < %s AND rx->>'gatewayId' IS NOT NULL
"""


def links(conn: psycopg.Connection, schema: str, start: dt.datetime,
          end: dt.datetime) -> tuple[list[Link], dict[str, float]]:
    """Step 1 for one member, and each device's margin (step 2)."""
    rows = conn.execute(
        sql.SQL(
            """
            WITH f AS ({frames})
            SELECT dev_eui, gateway_id, count(DISTINCT deduplication_id), avg(rssi),
                   avg(snr), max(snr), max(time)
            FROM f GROUP BY dev_eui, gateway_id ORDER BY dev_eui, gateway_id
            """
        ).format(frames=sql.SQL(_FRAMES).format(sql.Identifier(schema, "uplinks"))),
        (start, end),
    ).fetchall()
    found = [Link(r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6]) for r in rows]
    margins: dict[str, list[float]] = defaultdict(list)
    for dev_eui, _, sf, best in _best_per_frame(conn, schema, start, end):
        if sf in SF_FLOOR and best is not None:
            margins[dev_eui].append(best - SF_FLOOR[sf])
    return found, {d: sum(v) / len(v) for d, v in margins.items()}


def _best_per_frame(conn: psycopg.Connection, schema: str, start: dt.datetime,
                    end: dt.datetime) -> list[tuple[str, dt.datetime, int | None, float | None]]:
    return conn.execute(
        sql.SQL(
            "WITH f AS ({frames}) SELECT dev_eui, time, spreading_factor, max(snr)"
            " FROM f GROUP BY dev_eui, deduplication_id, time, spreading_factor"
            " ORDER BY dev_eui, time"
        ).format(frames=sql.SQL(_FRAMES).format(sql.Identifier(schema, "uplinks"))),
        (start, end),
    ).fetchall()


def declared_gateways(network_dir: Path) -> list[tuple[str, str, float, float]]:
    """(id, name, lat, lon) of network/gateways.yaml; none when the files are missing or
    invalid (`hypervision network check` says why)."""
    try:
        net = load(network_dir)
    except NetworkSpecError:
        return []
    return [(g.gateway_id, g.name, g.location.lat, g.location.lon)
            for g in net.gateways.gateways]


def network_gateways(control: psycopg.Connection,
                     declared: Sequence[tuple[str, str, float, float]]) -> list[GatewayCoverage]:
    """The declared gateways (id, name, lat, lon) and those ChirpStack lists."""
    found = {g[0]: GatewayCoverage(*g) for g in declared}
    for gid, name, lat, lon in control.execute(
            "SELECT gateway_id, name, latitude, longitude FROM hv.gateways"
            " WHERE in_chirpstack ORDER BY gateway_id").fetchall():
        found.setdefault(gid, GatewayCoverage(gid, name, lat, lon))
    return list(found.values())


def coverage(control: psycopg.Connection, member_conn: ConnectionFor,
             members: Sequence[tuple[str, str]], gateways: list[GatewayCoverage],
             start: dt.datetime, end: dt.datetime) -> Coverage:
    """Steps 1-3 over the (slug, schema) members; `member_conn(slug)` may read its
    schema (its reader role in the API)."""
    devices: list[DeviceCoverage] = []
    by_gateway = {g.gateway_id: g for g in gateways}
    declared = control.execute(
        "SELECT member_slug, dev_eui, name, (spec->'location'->>'lat')::float,"
        " (spec->'location'->>'lon')::float, spec->>'data_class' = ANY(%s) FROM hv.devices"
        " WHERE active AND member_slug = ANY(%s) ORDER BY member_slug, name, dev_eui",
        (list(PERSONAL_DATA_CLASSES), [m[0] for m in members])).fetchall()
    for slug, schema in members:
        with member_conn(slug) as conn:
            found, margins = links(conn, schema, start, end)
        mine = {r[1]: DeviceCoverage(slug, r[1], r[2], r[3], r[4], personal=bool(r[5]))
                for r in declared if r[0] == slug}
        for link in found:
            device = mine.setdefault(link.dev_eui, DeviceCoverage(slug, link.dev_eui,
                                                                  link.dev_eui, None, None))
            device.links.append(link)
            if link.gateway_id not in by_gateway:
                by_gateway[link.gateway_id] = GatewayCoverage(link.gateway_id,
                                                              link.gateway_id, None, None)
                gateways.append(by_gateway[link.gateway_id])
            by_gateway[link.gateway_id].devices.append(link.dev_eui)
        for dev_eui, margin in margins.items():
            mine[dev_eui].margin_db = round(margin, 1)
        devices.extend(mine.values())
    return Coverage(start, end, devices, gateways)


def withhold(c: Coverage, members: set[str]) -> Coverage:
    """For a caller without the right to these members' personal data: the names of
    their devices of a personal data class (often an address) are withheld and their
    positions rounded to 0.01° (about a kilometre), as the device lists do."""
    for d in c.devices:
        if d.member in members and d.personal:
            d.name = WITHHELD_NAME
            d.lat = None if d.lat is None else round(d.lat, 2)
            d.lon = None if d.lon is None else round(d.lon, 2)
    return c


def to_csv(c: Coverage) -> str:
    """One row per device and gateway hearing it (a device heard by none: one row with
    an empty gateway)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["member", "dev_eui", "name", "gateways", "at_risk", "margin_db", "gateway_id",
                "frames", "rssi_mean", "snr_mean", "snr_best", "last_heard"])
    for d in c.devices:
        head = [d.member, d.dev_eui, d.name, len(d.links), d.at_risk,
                "" if d.margin_db is None else d.margin_db]
        if not d.links:
            w.writerow([*head, "", 0, "", "", "", ""])
        for link in d.links:
            w.writerow([*head, link.gateway_id, link.frames, _r(link.rssi_mean),
                        _r(link.snr_mean), _r(link.snr_best), link.last_heard.isoformat()])
    return out.getvalue()


def _r(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


# Alerts ---------------------------------------------------------------------------------


def weak_devices(conn: psycopg.Connection, schema: str, now: dt.datetime, threshold: float,
                 days: int) -> tuple[dict[str, float], set[str]]:
    """Devices whose every frame of the last `days` days had a margin under `threshold`
    and which were heard within the window's first day (best margin seen), and the
    devices heard in the window that do not qualify."""
    start = now - dt.timedelta(days=days)
    frames = _best_per_frame(conn, schema, start, now)
    per: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    for dev_eui, t, sf, best in frames:
        if sf in SF_FLOOR and best is not None:
            per[dev_eui].append((t, best - SF_FLOOR[sf]))
    weak, fine = {}, set()
    for dev_eui, seen in per.items():
        best = max(m for _, m in seen)
        if best < threshold and min(t for t, _ in seen) < start + dt.timedelta(days=1):
            weak[dev_eui] = best
        else:
            fine.add(dev_eui)
    return weak, fine


@dataclass
class MarginCheck:
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def check_margins(conn: psycopg.Connection, slug: str, schema: str, now: dt.datetime,
                  threshold: float, days: int,
                  catalogue: psycopg.Connection | None = None) -> MarginCheck:
    """Open and close the member's `coverage_margin` alerts (module docstring). `conn` is
    on the member's database server, `catalogue` on the primary (default: `conn`)."""
    result = MarginCheck()
    weak, fine = weak_devices(conn, schema, now, threshold, days)
    s = sql.Identifier(schema)
    contacts = (catalogue or conn).execute(
        "SELECT spec->'contacts' FROM hv.members WHERE slug = %s", (slug,)).fetchone()
    technical = ((contacts[0] or {}).get("technical") or {}).get("email") if contacts else None
    with conn.transaction():
        for dev_eui, best in sorted(weak.items()):
            row = conn.execute(
                sql.SQL(
                    """
                    INSERT INTO {s}.alerts (rule, dev_eui, condition, threshold, severity,
                                            message, value, since, last_value, rule_spec)
                    VALUES (%(rule)s, %(dev)s, 'coverage_margin', %(threshold)s, 'warning',
                            %(message)s, %(best)s, %(since)s, %(best)s, %(spec)s)
                    ON CONFLICT (rule, dev_eui) WHERE state <> 'closed' DO NOTHING
                    RETURNING id
                    """
                ).format(s=s),
                {"rule": RULE, "dev": dev_eui, "threshold": threshold, "best": best,
                 "since": now - dt.timedelta(days=days),
                 "message": f"marge radio sous {threshold:g} dB depuis {days} jours"
                            f" (meilleure : {best:.1f} dB) : ajouter une passerelle ou"
                            " déplacer le capteur",
                 "spec": Jsonb({"threshold_db": threshold, "days": days})},
            ).fetchone()
            if row is not None:
                result.opened.append(dev_eui)
                if technical:
                    conn.execute(
                        sql.SQL("INSERT INTO {}.alert_notifications (alert_id, channel,"
                                " target) VALUES (%s, 'email', %s)"
                                " ON CONFLICT DO NOTHING").format(s), (row[0], technical))
        if fine:
            rows = conn.execute(
                sql.SQL("UPDATE {}.alerts SET state = 'closed', closed_at = now(),"
                        " closed_by = 'system', close_reason = 'marge radio rétablie'"
                        " WHERE rule = %s AND dev_eui = ANY(%s) AND state <> 'closed'"
                        " RETURNING dev_eui").format(s), (RULE, sorted(fine))).fetchall()
            result.closed = [r[0] for r in rows]
    return result
