"""Member gamma, the console tests' own: a small town with water meters, glass bins and
CO2 sensors in two schools, placed on a map, with a week of recent readings, uplinks
heard by two gateways, a few silent devices and low batteries, and open alerts.

Its people: gaston (agent, read), gabrielle (admin), dora (the DPO declared in the
file, read right only). Other personas come from the API tests' world.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from hypervision.tenancy.spec import TenantSpec

SLUG = "gamma"
SCHEMA = "tenant_gamma"
GATEWAYS = ("b827ebfffe000001", "b827ebfffe000002")
BUILDINGS = ("École Jules Ferry", "École du Port")
# (model, data class, metrics with a base value and amplitude)
KINDS = {
    "water": ("milesight-em300-di", "water-consumption", {"water.index": (120_000.0, 0.0)}),
    "bin": ("milesight-em400-mud", "waste-fill", {"fill.level": (40.0, 35.0)}),
    "air": ("milesight-am103", "indoor-air", {"air.co2": (700.0, 350.0),
                                             "air.temperature": (20.0, 2.0),
                                             "air.humidity": (45.0, 8.0)}),
}


def dev_eui(kind: str, n: int) -> str:
    prefix = {"water": "c3c3c3c3c3c1", "bin": "c3c3c3c3c3c2", "air": "c3c3c3c3c3c3"}[kind]
    return f"{prefix}{n:04x}"


def devices() -> list[dict[str, Any]]:
    out = []
    for n in range(1, 9):
        out.append({"dev_eui": dev_eui("water", n), "name": f"Compteur d'eau {n}",
                    "model": KINDS["water"][0], "data_class": "water-consumption",
                    "variables": {"litres_per_pulse": "10"},
                    "location": {"lat": 47.87 + 0.004 * n, "lon": -3.92 + 0.006 * (n % 4),
                                 "address": f"{n} rue de la Gare"}})
    for n in range(1, 7):
        out.append({"dev_eui": dev_eui("bin", n), "name": f"Conteneur verre {n}",
                    "model": KINDS["bin"][0], "data_class": "waste-fill",
                    "variables": {"container_depth_mm": "1500"},
                    "location": {"lat": 47.86 + 0.007 * n, "lon": -3.93 + 0.009 * (n % 3),
                                 "address": f"Place {n}"}})
    for n in range(1, 7):
        school = BUILDINGS[n % 2]
        out.append({"dev_eui": dev_eui("air", n), "name": f"CO2 salle {n}",
                    "model": KINDS["air"][0], "data_class": "indoor-air",
                    "location": {"lat": 47.875 + 0.01 * (n % 2), "lon": -3.905 - 0.001 * n,
                                 "building": school, "room": f"Salle {n}"}})
    return out


def spec() -> TenantSpec:
    return TenantSpec.model_validate({
        "version": "v1", "kind": "tenant", "name": SLUG,
        "identity": {"name": "Commune de Gamma-sur-Mer", "kind": "commune",
                     "siren": "210000303"},
        "contacts": {"dpo": {"name": "Dora DPO", "email": "dora@gamma.example.org"}},
        "users": [
            {"name": "Gaston Agent", "email": "gaston@gamma.example.org", "rights": ["read"]},
            {"name": "Gabrielle Admin", "email": "gabrielle@gamma.example.org",
             "rights": ["read", "export", "admin"]},
            {"name": "Dora DPO", "email": "dora@gamma.example.org", "rights": ["read"]},
        ],
        "retention": {"raw": 400, "water-consumption": 1095, "waste-fill": 730,
                      "indoor-air": 730},
        "export_recipients": [{"name": "Bureau d'études", "third_party": True,
                               "coarsen": "hour"}],
        "devices": devices(),
    })


def seed(conn: psycopg.Connection, now: dt.datetime) -> dict[str, Any]:
    """A week of hourly readings and uplinks up to `now`; silent and low-battery devices;
    three open alerts. Returns what tests refer to."""
    s = sql.Identifier(SCHEMA)
    hours = 7 * 24
    silent = {dev_eui("water", 8), dev_eui("bin", 6)}
    low = {dev_eui("air", 5): 12.0, dev_eui("bin", 5): 15.0}
    uplinks, measurements, states = [], [], []
    for i, d in enumerate(devices()):
        kind = next(k for k, v in KINDS.items() if v[0] == d["model"])
        last = now - dt.timedelta(days=3) if d["dev_eui"] in silent else now
        for h in range(hours, -1, -1):
            at = last - dt.timedelta(hours=h, minutes=i)
            dedup = uuid.uuid4()
            gateways = [GATEWAYS[h % 2]] if i % 3 else list(GATEWAYS)
            uplinks.append((at, at, d["dev_eui"], dedup, hours - h, 85, bytes([h % 256]),
                            -90 - (i % 7) - (h % 5), 7.5 - (i % 4), len(gateways), gateways,
                            Json({"deduplicationId": str(dedup)})))
            for metric, (base, amp) in KINDS[kind][2].items():
                if metric == "water.index":
                    value = base + 100 * i + 12.5 * (hours - h)
                else:
                    phase = ((at.hour + i) % 24) / 24
                    value = base + amp * (1 - abs(2 * phase - 1))
                measurements.append((at, d["dev_eui"], metric, round(value, 2), "", dedup))
        states.append((d["dev_eui"], last, hours + 1, low.get(d["dev_eui"], 87.0),
                       -92 - i % 7, 7.0))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL(
            "INSERT INTO {}.uplinks (time, received_at, dev_eui, deduplication_id, f_cnt,"
            " f_port, data, rssi, snr, gateway_count, gateways, event)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(s), uplinks)
        with cur.copy(sql.SQL("COPY {}.measurements (time, dev_eui, metric, value, unit,"
                              " deduplication_id) FROM STDIN").format(s)) as copy:
            for row in measurements:
                copy.write_row(row)
        cur.executemany(sql.SQL(
            "INSERT INTO {}.device_state (dev_eui, last_seen, uplinks_seen, battery_level,"
            " last_rssi, last_snr) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (dev_eui) DO UPDATE SET last_seen = excluded.last_seen,"
            " battery_level = excluded.battery_level").format(s), states)
        cur.execute(sql.SQL(
            "UPDATE {}.device_state SET decode_errors = 2,"
            " last_decode_error = 'payload too short (3 bytes)', last_decode_error_at = %s"
            " WHERE dev_eui = %s").format(s), (now - dt.timedelta(hours=5), dev_eui("bin", 2)))
        alerts = []
        for rule, dev, severity, metric, value in (
                ("co2-high", dev_eui("air", 3), "critical", "air.co2", 1650.0),
                ("bin-full", dev_eui("bin", 4), "warning", "fill.level", 92.0),
                ("battery-low", dev_eui("air", 5), "info", "battery.level", 12.0)):
            row = cur.execute(sql.SQL(
                "INSERT INTO {}.alerts (rule, dev_eui, condition, metric, threshold, severity,"
                " message, value, since, last_value, rule_spec)"
                " VALUES (%s, %s, 'above', %s, 80, %s, %s, %s, %s, %s, %s) RETURNING id"
            ).format(s), (rule, dev, metric, severity, f"{metric} = {value:g}", value,
                          now - dt.timedelta(hours=2), value, Json({"name": rule}))).fetchone()
            assert row is not None
            alerts.append(int(row[0]))
        cur.execute(
            "INSERT INTO hv.ingest_outcomes (day, member_slug, event_type, outcome, events,"
            " bytes) VALUES (current_date, %s, 'up', 'stored', 480, 24000),"
            " (current_date, %s, 'up', 'decode_failed', 2, 60)"
            " ON CONFLICT DO NOTHING", (SLUG, SLUG))
        cur.executemany(
            "INSERT INTO hv.gateways (gateway_id, tenant_id, member_slug, name, latitude,"
            " longitude, state, state_since, last_seen_at) VALUES (%s, %s, NULL, %s, %s, %s,"
            " %s, %s, %s) ON CONFLICT (gateway_id) DO NOTHING",
            [(GATEWAYS[0], uuid.uuid4(), "Château d'eau de Gamma", 47.88, -3.91, "ONLINE",
              now - dt.timedelta(days=20), now - dt.timedelta(seconds=40)),
             (GATEWAYS[1], uuid.uuid4(), "Mairie de Gamma", 47.87, -3.92, "ONLINE",
              now - dt.timedelta(days=12), now - dt.timedelta(seconds=25)),
             ("b827ebfffe0000ff", uuid.uuid4(), "Salle des sports", 47.86, -3.94, "OFFLINE",
              now - dt.timedelta(hours=6), now - dt.timedelta(hours=6))])
        for n, (reason, detail) in enumerate((
                ("decode_failed", "payload too short (3 bytes) for milesight-em400-mud"),
                ("unknown_device", "no member declares this DevEUI"))):
            cur.execute(
                "INSERT INTO hv.dead_letters (received_at, origin, event_type, dev_eui,"
                " member_slug, reason, detail, payload, digest) VALUES (%s, 'mqtt', 'up',"
                " %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (now - dt.timedelta(minutes=30 + n), dev_eui("bin", 2) if n == 0
                 else "ffffffffffff0001", SLUG if n == 0 else None, reason, detail,
                 b"\x01\x02\x03", uuid.uuid4().bytes))
    return {"alerts": alerts, "silent": sorted(silent), "low": sorted(low),
            "measurements": len(measurements), "uplinks": len(uplinks)}
