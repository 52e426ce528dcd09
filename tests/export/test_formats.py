"""The bytes PostgreSQL writes for an export (export/formats.py) are the ones the earlier
Python encoders wrote: awkward texts round-trip in every format, floats read as Python's
repr, pseudonyms computed in SQL equal Pseudonymiser's, and a recipient with coarsened
times and dropped fields gets what Pseudonymiser makes of each row."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from hypervision import pseudonym as ps
from hypervision.export import ExportFilter, open_export
from hypervision.pseudonym import Pseudonymiser, member_secret
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from tests.export.conftest import Ingest, topic, uplink_event
from tests.export.test_export import put_measurements

pytestmark = pytest.mark.services

T0 = datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
Reader = Callable[[TenantSpec], psycopg.Connection]
# Everything CSV and JSON escape, and what they must not.
AWKWARD = 'a "quoted", back\\slash\nnew line\rreturn\ttab \x01 \x1f é°€ 𝄞 \u2028 /'


def export(conn: psycopg.Connection, spec: TenantSpec, kind: str, fmt: str,
           p: Pseudonymiser | None = None, **kwargs: object) -> bytes:
    stream = open_export(conn, spec.schema, kind, fmt, ExportFilter(), p,  # type: ignore[arg-type]
                         **kwargs)  # type: ignore[arg-type]
    return b"".join(stream.chunks)


def test_awkward_texts_round_trip_in_every_format_and_json_is_pythons(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    water, air = (d.dev_eui for d in member.devices)
    put_measurements(admin, member, [
        (T0, 0, AWKWARD, 1.5, "L"),
        (T0, 1, "air.co2", 415.0, AWKWARD),
        (T0 + timedelta(seconds=1), 1, "air.co2", 2.0, ""),
    ])
    names = {water: AWKWARD, air: "CO2 école"}
    conn = reader(member)
    expected = [
        ["2025-05-06T07:08:09.123456Z", water, AWKWARD, AWKWARD, "1.5", "L"],
        ["2025-05-06T07:08:09.123456Z", air, "CO2 école", "air.co2", "415.0", AWKWARD],
        ["2025-05-06T07:08:10.123456Z", air, "CO2 école", "air.co2", "2.0", ""],
    ]
    # Ordered by time, then DevEUI and metric in byte order.
    expected.sort(key=lambda r: (r[0], r[1].encode(), r[3].encode()))

    data = export(conn, member, "measurements", "csv", names=names)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["time", "dev_eui", "device_name", "metric", "value", "unit"]
    assert rows[1:] == expected

    data = export(conn, member, "measurements", "jsonl", names=names)
    keys = ("time", "dev_eui", "device_name", "metric", "value", "unit")
    objects = [dict(zip(keys, (*r[:4], float(r[4]), r[5]), strict=True)) for r in expected]
    # Byte for byte what json.dumps writes (the earlier encoder): one line per row.
    assert data == b"".join(
        json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for o in objects)

    table = pq.read_table(io.BytesIO(export(conn, member, "measurements", "parquet",
                                            names=names)))
    assert [[r["dev_eui"], r["device_name"], r["metric"], r["value"], r["unit"]]
            for r in table.to_pylist()] == [
        [r[1], r[2], r[3], float(r[4]), r[5]] for r in expected]


def test_a_device_without_a_name_and_an_empty_text_are_empty_csv_fields_and_json_null(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    water = member.devices[0].dev_eui
    put_measurements(admin, member, [(T0, 0, "water.index", 7.0, "")])
    conn = reader(member)
    assert export(conn, member, "measurements", "csv", names={}).decode().splitlines()[1] == (
        f"2025-05-06T07:08:09.123456Z,{water},,water.index,7.0,")
    line = json.loads(export(conn, member, "measurements", "jsonl", names={}))
    assert (line["device_name"], line["unit"]) == (None, "")
    row = pq.read_table(io.BytesIO(export(conn, member, "measurements", "parquet",
                                          names={}))).to_pylist()[0]
    assert (row["device_name"], row["unit"]) == (None, "")


def _floats() -> list[float]:
    special = [0.0, -0.0, 0.1, 1.0, -2.5, 1e-4, 1e-5, 1.5e-5, 123456789.125, 1e14,
               999999999999999.9, 1e15, 1e15 + 2, 1234567890123456.5, 9007199254740993.0,
               1e16, 1.2345e16, 1e22, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, -1e300, math.pi, 415.0, 1250.5,
               math.nan, math.inf, -math.inf]
    rng = random.Random(7)
    randoms = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
               for _ in range(1500)]
    randoms += [rng.uniform(-1e6, 1e6) for _ in range(500)]
    randoms += [round(rng.uniform(0, 3000), 1) for _ in range(500)]
    return special + [v for v in randoms if not math.isnan(v)]


def test_floats_are_written_as_python_writes_them(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    values = _floats()
    put_measurements(admin, member, [(T0 + timedelta(seconds=i), 0, "water.index", v, "L")
                                     for i, v in enumerate(values)])
    conn = reader(member)
    lines = export(conn, member, "measurements", "csv").decode().splitlines()[1:]
    assert [line.rsplit(",", 2)[1] for line in lines] == [repr(v) for v in values]
    lines = export(conn, member, "measurements", "jsonl").decode().splitlines()
    assert [line.rsplit(',"value":', 1)[1].split(",", 1)[0] for line in lines] == [
        json.dumps(v) for v in values]
    table = pq.read_table(io.BytesIO(export(conn, member, "measurements", "parquet")))
    got = table.column("value").to_pylist()
    assert [struct.pack("<d", v) for v in got if not math.isnan(v)] == [
        struct.pack("<d", v) for v in values if not math.isnan(v)]


def test_an_event_stored_with_line_breaks_stays_one_json_line(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    event = {"deduplicationId": str(uuid.uuid4()), "time": "2025-05-06T07:08:09Z",
             "deviceInfo": {"devEui": member.devices[1].dev_eui, "deviceName": AWKWARD}}
    text = json.dumps(event, indent=2, ensure_ascii=False)  # line breaks between tokens
    admin.execute(sql.SQL(
        "INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port, data,"
        " event) VALUES (%s, %s, %s, %s, 1, 85, '\\x00', %s::json)").format(
        sql.Identifier(member.schema, "uplinks")),
        (T0, T0, member.devices[1].dev_eui, event["deduplicationId"], text))
    data = export(reader(member), member, "uplinks", "jsonl")
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert json.loads(data) == event
    assert data == text.replace("\n", " ").encode() + b"\n"


def test_pseudonyms_computed_in_sql_are_pythons_byte_for_byte(
    platform_db: Settings, reader: Reader, member: TenantSpec
) -> None:
    p = Pseudonymiser(member_secret(platform_db, member.name))
    values = ["0016c001f153a14c", "a1b2c3d4e5f60718", "01ab23cd", "", "é€𝄞", "x" * 200,
              str(uuid.UUID(int=0)), str(uuid.uuid4())]
    conn = reader(member)
    with conn.transaction(force_rollback=True):
        keys = p.key_settings()
        conn.execute("SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
                     [x for kv in keys.items() for x in kv])
        v = sql.SQL("v")
        rows = conn.execute(sql.SQL(
            "SELECT {}, {}, {}, {} FROM unnest(%s::text[]) AS u(v), {}").format(
            ps.sql_pseudonym("dev_eui", v, 16), ps.sql_pseudonym("gateway_id", v, 16),
            ps.sql_pseudonym("dev_addr", v, 8),
            ps.sql_deduplication_id(ps.sql_hmac("deduplication_id", v)),
            ps.sql_key_source()), (values,)).fetchall()
    assert rows == [(p.dev_eui(x), p.gateway_id(x), p.dev_addr(x), p.deduplication_id(x))
                    for x in values]
    # The pads are set for the export's transaction only.
    assert conn.execute("SELECT current_setting('hv.pseudonym_inner', true)").fetchone() in (
        (None,), ("",))


def _reference_uplink(p: Pseudonymiser, row: dict[str, str]) -> list[str]:
    """What Pseudonymiser makes of one row of the plain uplinks CSV (the earlier Python
    shaper, written out), as CSV texts."""
    def time(text: str) -> str:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return p.time(value).isoformat(timespec="microseconds").replace("+00:00", "Z")

    gone = p.dropped(row["dev_eui"])
    radio = "radio" not in gone

    def keep(name: str, kept: bool) -> str:
        return row[name] if kept else ""

    return [
        time(row["time"]), time(row["received_at"]), p.dev_eui(row["dev_eui"]),
        p.device_name(row["dev_eui"]), p.deduplication_id(row["deduplication_id"]),
        row["f_cnt"], row["f_port"], keep("dr", radio), row["adr"], row["confirmed"],
        p.dev_addr(row["dev_addr"]) if row["dev_addr"] else "",
        keep("data_hex", "data" not in gone), keep("rssi", radio), keep("snr", radio),
        keep("gateway_count", radio),
        ";".join(p.gateway_id(g) for g in row["gateways"].split(";"))
        if row["gateways"] and radio else "",
        keep("frequency", radio), keep("spreading_factor", radio), row["codec"],
        row["decode_error"],
    ]


@pytest.mark.parametrize(("coarsen", "drop"), [("hour", {"data"}), ("day", {"radio"}),
                                               (None, set())])
def test_a_recipient_with_coarsened_times_and_dropped_fields_gets_pythons_rows(
    platform_db: Settings, member: TenantSpec, reader: Reader, ingest: Ingest,
    coarsen: str | None, drop: set[str],
) -> None:
    ingest((topic(member, 0), uplink_event(member, 0, T0, f_cnt=1)),
           (topic(member, 1), uplink_event(member, 1, T0 + timedelta(minutes=3), f_cnt=4)),
           (topic(member, 1), uplink_event(member, 1, T0 + timedelta(hours=5), f_cnt=5,
                                           gateways=())))
    water = member.devices[0].dev_eui
    p = Pseudonymiser(member_secret(platform_db, member.name), coarsen=coarsen, drop=drop,
                      device_drop={water: {"event"}})
    conn = reader(member)
    plain = list(csv.DictReader(io.StringIO(export(conn, member, "uplinks", "csv").decode())))
    assert len(plain) == 3
    got = list(csv.reader(io.StringIO(export(conn, member, "uplinks", "csv", p).decode())))
    assert got[1:] == [_reference_uplink(p, r) for r in plain]

    table = pq.read_table(io.BytesIO(export(conn, member, "uplinks", "parquet", p)))
    assert [r["deduplication_id"] for r in table.to_pylist()] == [r[4] for r in got[1:]]
    assert [r["data_hex"] or "" for r in table.to_pylist()] == [r[11] for r in got[1:]]

    plain_m = [json.loads(line) for line in
               export(conn, member, "measurements", "jsonl").splitlines()]
    got_m = [json.loads(line) for line in
             export(conn, member, "measurements", "jsonl", p).splitlines()]
    assert got_m == [{
        "time": p.time(datetime.fromisoformat(m["time"].replace("Z", "+00:00"))).isoformat(
            timespec="microseconds").replace("+00:00", "Z"),
        "dev_eui": p.dev_eui(m["dev_eui"]), "device_name": p.device_name(m["dev_eui"]),
        "metric": m["metric"], "value": m["value"], "unit": m["unit"]} for m in plain_m]
