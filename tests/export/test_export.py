"""The export library against the real database: exact content in each format, filters,
incremental exports from a cursor (late rows, long writers), bad cursors and isolation."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from hypervision.export import ExportError, ExportFilter, open_export
from hypervision.export import cursor as cursors
from hypervision.tenancy.spec import TenantSpec
from tests.export.conftest import Ingest, topic, uplink_event

pytestmark = pytest.mark.services

T0 = datetime(2025, 1, 1, tzinfo=UTC)
Reader = Callable[[TenantSpec], psycopg.Connection]


def put_measurements(admin: psycopg.Connection, spec: TenantSpec,
                     rows: list[tuple[datetime, int, str, float, str]],
                     conn: psycopg.Connection | None = None) -> None:
    """Insert measurements directly, as the superuser: (time, device index, metric, value,
    unit)."""
    (conn or admin).execute(
        sql.SQL("INSERT INTO {} (time, dev_eui, metric, value, unit, deduplication_id)"
                " SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[],"
                " %s::float8[], %s::text[], %s::uuid[])").format(
            sql.Identifier(spec.schema, "measurements")),
        ([r[0] for r in rows], [spec.devices[r[1]].dev_eui for r in rows],
         [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows],
         [uuid.uuid4() for _ in rows]),
    )


def known_measurements(admin: psycopg.Connection, spec: TenantSpec) -> None:
    put_measurements(admin, spec, [
        (T0 + timedelta(days=1), 0, "water.index", 1250.5, "L"),
        (T0, 1, "air.co2", 415.0, "ppm"),
        (T0, 0, "water.index", 1000.0, "L"),
        (T0 + timedelta(hours=1, minutes=30, milliseconds=250), 1, "air.temperature", 19.5,
         "°C"),
    ])


def run(conn: psycopg.Connection, spec: TenantSpec, kind: str, fmt: str,
        flt: ExportFilter | None = None, **kwargs: object) -> tuple[bytes, str, int]:
    stream = open_export(conn, spec.schema, kind, fmt, flt or ExportFilter(),  # type: ignore[arg-type]
                         **kwargs)  # type: ignore[arg-type]
    data = b"".join(stream.chunks)
    return data, stream.next_cursor, stream.rows()


def csv_lines(data: bytes) -> list[str]:
    return data.decode("utf-8").splitlines()


def test_a_measurements_export_is_exactly_right_in_each_format(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    known_measurements(admin, member)
    water, air = (d.dev_eui for d in member.devices)
    conn = reader(member)

    data, _, rows = run(conn, member, "measurements", "csv")
    assert rows == 4
    assert data.decode("utf-8") == (
        "time,dev_eui,device_name,metric,value,unit\n"
        f"2025-01-01T00:00:00.000000Z,{water},,water.index,1000.0,L\n"
        f"2025-01-01T00:00:00.000000Z,{air},,air.co2,415.0,ppm\n"
        f"2025-01-01T01:30:00.250000Z,{air},,air.temperature,19.5,°C\n"
        f"2025-01-02T00:00:00.000000Z,{water},,water.index,1250.5,L\n"
    )

    names = {d.dev_eui: d.name for d in member.devices}
    data, _, _ = run(conn, member, "measurements", "jsonl", names=names)
    assert [json.loads(line) for line in data.splitlines()] == [
        {"time": "2025-01-01T00:00:00.000000Z", "dev_eui": water,
         "device_name": "Compteur 12 rue des Lilas", "metric": "water.index", "value": 1000.0,
         "unit": "L"},
        {"time": "2025-01-01T00:00:00.000000Z", "dev_eui": air, "device_name": "CO2 école salle 3",
         "metric": "air.co2", "value": 415.0, "unit": "ppm"},
        {"time": "2025-01-01T01:30:00.250000Z", "dev_eui": air,
         "device_name": "CO2 école salle 3", "metric": "air.temperature", "value": 19.5,
         "unit": "°C"},
        {"time": "2025-01-02T00:00:00.000000Z", "dev_eui": water,
         "device_name": "Compteur 12 rue des Lilas", "metric": "water.index", "value": 1250.5,
         "unit": "L"},
    ]
    assert data.endswith(b"\n") and data.count(b"\n") == 4

    data, _, rows = run(conn, member, "measurements", "parquet", names=names)
    table = pq.read_table(io.BytesIO(data))
    assert rows == 4
    assert table.schema == pa.schema([
        ("time", pa.timestamp("us", tz="UTC")), ("dev_eui", pa.string()),
        ("device_name", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
        ("unit", pa.string()),
    ])
    assert table.to_pylist() == [
        {"time": T0, "dev_eui": water, "device_name": "Compteur 12 rue des Lilas",
         "metric": "water.index", "value": 1000.0, "unit": "L"},
        {"time": T0, "dev_eui": air, "device_name": "CO2 école salle 3", "metric": "air.co2",
         "value": 415.0, "unit": "ppm"},
        {"time": T0 + timedelta(hours=1, minutes=30, milliseconds=250), "dev_eui": air,
         "device_name": "CO2 école salle 3", "metric": "air.temperature", "value": 19.5,
         "unit": "°C"},
        {"time": T0 + timedelta(days=1), "dev_eui": water,
         "device_name": "Compteur 12 rue des Lilas", "metric": "water.index", "value": 1250.5,
         "unit": "L"},
    ]


def test_an_empty_export_is_still_a_valid_file(member: TenantSpec, reader: Reader) -> None:
    conn = reader(member)
    assert run(conn, member, "measurements", "csv")[0] == (
        b"time,dev_eui,device_name,metric,value,unit\n")
    assert run(conn, member, "uplinks", "jsonl")[0] == b""
    table = pq.read_table(io.BytesIO(run(conn, member, "uplinks", "parquet")[0]))
    assert table.num_rows == 0 and "deduplication_id" in table.schema.names


def test_an_uplinks_export_gives_chirpstack_json_lines_and_flat_columns(
    member: TenantSpec, reader: Reader, ingest: Ingest
) -> None:
    received = T0 + timedelta(seconds=2)
    first = uplink_event(member, 1, T0, f_cnt=7)
    second = uplink_event(member, 0, T0 + timedelta(minutes=10), f_cnt=3, gateways=())
    ingest((topic(member, 1), first), (topic(member, 0), second),
           received_at=received.timestamp())
    conn = reader(member)

    # JSON Lines: each event exactly as ChirpStack sent it, in time order.
    data, _, rows = run(conn, member, "uplinks", "jsonl")
    assert rows == 2
    assert data == first + b"\n" + second + b"\n"

    # CSV: the flat columns.
    data, _, _ = run(conn, member, "uplinks", "csv")
    header, line1, line2 = csv_lines(data)
    assert header == ("time,received_at,dev_eui,device_name,deduplication_id,f_cnt,f_port,dr,"
                      "adr,confirmed,dev_addr,data_hex,rssi,snr,gateway_count,gateways,"
                      "frequency,spreading_factor,codec,decode_error")
    event = json.loads(first)
    payload = bytes.fromhex(line1.split(",")[11])
    assert line1.split(",")[:11] == [
        "2025-01-01T00:00:00.000000Z", "2025-01-01T00:00:02.000000Z",
        member.devices[1].dev_eui, "CO2 école salle 3", event["deduplicationId"], "7", "85",
        "5", "true", "false", "01ab23cd",
    ]
    assert payload == base64.b64decode(event["data"])
    assert line1.split(",")[12:18] == ["-80", "7.5", "2", ";".join(
        ("0016c001f153a14c", "7276ff0039030a2b")), "868100000", "7"]
    assert line2.split(",")[14:16] == ["0", ""]

    # Parquet: the same columns, typed.
    table = pq.read_table(io.BytesIO(run(conn, member, "uplinks", "parquet")[0]))
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("f_cnt").type == pa.int64()
    assert table.schema.field("adr").type == pa.bool_()
    assert table.column("deduplication_id").to_pylist() == [
        event["deduplicationId"], json.loads(second)["deduplicationId"]]
    assert table.column("snr").to_pylist()[0] == 7.5


def test_filters_select_a_time_range_devices_and_metrics(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    known_measurements(admin, member)
    water, air = (d.dev_eui for d in member.devices)
    conn = reader(member)

    def values(flt: ExportFilter) -> list[tuple[str, str]]:
        data, _, _ = run(conn, member, "measurements", "jsonl", flt)
        return [(r["dev_eui"], r["metric"]) for r in map(json.loads, data.splitlines())]

    # Half-open range: start included, end excluded; naive times are UTC.
    assert values(ExportFilter(start=T0 + timedelta(hours=1, minutes=30, milliseconds=250),
                               end=datetime(2025, 1, 2))) == [(air, "air.temperature")]
    assert values(ExportFilter(devices=(water.upper(),))) == [
        (water, "water.index"), (water, "water.index")]
    assert values(ExportFilter(metrics=("air.co2", "water.index"), end=T0 + timedelta(hours=1))
                  ) == [(water, "water.index"), (air, "air.co2")]
    assert values(ExportFilter(devices=(air,), metrics=("water.index",))) == []


def test_an_incremental_export_returns_only_new_rows_including_late_ones(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader, ingest: Ingest
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ingest((topic(member, 1), uplink_event(member, 1, now - timedelta(minutes=5), f_cnt=1)))
    known_measurements(admin, member)
    conn = reader(member)
    _, cursor, rows = run(conn, member, "measurements", "csv")
    assert rows == 4 + 4  # the uplink's four readings, and the known ones
    _, up_cursor, rows = run(conn, member, "uplinks", "csv")
    assert rows == 1

    # Nothing new: nothing returned, and the cursor still works afterwards.
    data, cursor, rows = run(conn, member, "measurements", "csv", ExportFilter(cursor=cursor))
    assert (rows, csv_lines(data)[1:]) == (0, [])

    # A fresh uplink, and a late one: an hourly history frame from last year.
    late = uplink_event(member, 1, datetime(2024, 6, 1, 12, tzinfo=UTC), f_cnt=2,
                        values={"co2": 999})
    ingest((topic(member, 1), uplink_event(member, 1, now, f_cnt=3, values={"co2": 700})),
           (topic(member, 1), late))
    data, cursor, rows = run(conn, member, "measurements", "jsonl",
                             ExportFilter(cursor=cursor, metrics=("air.co2",)))
    assert [(r["time"], r["value"]) for r in map(json.loads, data.splitlines())] == [
        ("2024-06-01T12:00:00.000000Z", 999.0),
        (now.isoformat().replace("+00:00", ".000000Z"), 700.0),
    ]
    data, up_cursor, rows = run(conn, member, "uplinks", "jsonl", ExportFilter(cursor=up_cursor))
    assert rows == 2 and data.splitlines()[0] == late

    # A corrected reading counts as new (the watermark follows UPDATEs).
    admin.execute(sql.SQL("UPDATE {} SET value = 1001 WHERE metric = 'water.index'"
                          " AND time = %s").format(sql.Identifier(member.schema,
                                                                  "measurements")), (T0,))
    data, cursor, rows = run(conn, member, "measurements", "csv", ExportFilter(cursor=cursor))
    assert rows == 1 and csv_lines(data)[1].endswith(",water.index,1001.0,L")
    assert run(conn, member, "measurements", "csv", ExportFilter(cursor=cursor))[2] == 0


def test_a_row_committed_after_an_export_is_returned_by_the_next_one(
    platform_db: object, admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    """Two writers stay open across an export: one wrote before it, one starts before it
    but writes after. A wall-clock watermark would skip both rows (their transactions
    began before the export's cursor); the snapshot cursor returns each exactly once."""
    # The chunks exist already: TimescaleDB serialises the creation of new ones.
    put_measurements(admin, member, [(T0, 1, "air.humidity", 50.0, "%"),
                                     (T0 - timedelta(days=30), 1, "air.humidity", 50.0, "%")])
    conn = reader(member)
    _, cursor, _ = run(conn, member, "measurements", "csv")
    conninfo = platform_db.admin_conninfo()  # type: ignore[attr-defined]
    with psycopg.connect(conninfo) as early, psycopg.connect(conninfo) as slow:
        slow.execute("SELECT 1")  # its transaction starts now, without writing yet
        put_measurements(admin, member, [(T0, 0, "water.index", 1.0, "L")], conn=early)
        # The export runs while both are open: it sees neither.
        _, middle, rows = run(conn, member, "measurements", "csv", ExportFilter(cursor=cursor))
        assert rows == 0
        put_measurements(admin, member, [(T0 - timedelta(days=30), 0, "water.index", 2.0, "L")],
                         conn=slow)
        early.commit()
        slow.commit()
    put_measurements(admin, member, [(T0, 1, "air.co2", 3.0, "ppm")])

    data, last, rows = run(conn, member, "measurements", "jsonl", ExportFilter(cursor=middle))
    assert sorted(json.loads(line)["value"] for line in data.splitlines()) == [1.0, 2.0, 3.0]
    assert run(conn, member, "measurements", "csv", ExportFilter(cursor=last))[2] == 0


def test_a_bad_filter_or_cursor_is_an_export_error(member: TenantSpec, reader: Reader) -> None:
    conn = reader(member)
    _, good, _ = run(conn, member, "measurements", "csv")
    body = cursors.decode(good)
    assert body.instance is not None
    xmax = body.snapshot.xmax
    future = cursors.encode(cursors.Snapshot(xmax + 10**9, xmax + 10**9), body.instance)
    elsewhere = cursors.encode(body.snapshot, "00000000-0000-4000-8000-000000000000")
    middle = len(good) // 2
    bad = {
        "not a cursor": "bad cursor",
        good[:-3]: "bad cursor",
        # A character in the middle: the last one may only carry base64's unused bits.
        good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1:]: "bad cursor",
        "hv1.bm90LWEtc25hcHNob3Q": "bad cursor",
        future: "ahead of this database",
        elsewhere: "another copy of the member's data",
    }
    for token, message in bad.items():
        with pytest.raises(ExportError, match=message):
            open_export(conn, member.schema, "measurements", "csv", ExportFilter(cursor=token))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    for flt, message in [
        (ExportFilter(devices=("not-a-deveui",)), "not a DevEUI"),
        (ExportFilter(metrics=("air.co3",)), "unknown metric"),
        (ExportFilter(start=T0, end=T0), "start must be before end"),
    ]:
        with pytest.raises(ExportError, match=message):
            open_export(conn, member.schema, "measurements", "csv", flt)
    with pytest.raises(ExportError, match="measurements only"):
        open_export(conn, member.schema, "uplinks", "csv", ExportFilter(metrics=("air.co2",)))
    with pytest.raises(ExportError, match="unknown format"):
        open_export(conn, member.schema, "uplinks", "xlsx", ExportFilter())  # type: ignore[arg-type]


def test_a_member_reader_cannot_export_another_members_data(
    make_member: Callable[[], TenantSpec], reader: Reader
) -> None:
    mine, theirs = make_member(), make_member()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        open_export(reader(mine), theirs.schema, "measurements", "csv", ExportFilter())


def test_stopping_early_ends_the_export_transaction(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    put_measurements(admin, member, [(T0 + timedelta(minutes=i), 0, "water.index", float(i), "L")
                                     for i in range(30_000)])
    conn = reader(member)
    with open_export(conn, member.schema, "measurements", "csv", ExportFilter()) as stream:
        first = next(stream.chunks)
        assert first.startswith(b"time,")
        # In its transaction; ACTIVE while PostgreSQL's COPY is still sending rows.
        assert conn.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                                psycopg.pq.TransactionStatus.ACTIVE)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # An export never started is closed as well, and the connection serves again.
    open_export(conn, member.schema, "uplinks", "parquet", ExportFilter()).close()
    assert run(conn, member, "measurements", "csv", with_total=True)[2] == 30_000


def test_an_export_inside_the_callers_transaction_needs_repeatable_read(
    admin: psycopg.Connection, member: TenantSpec, reader: Reader
) -> None:
    known_measurements(admin, member)
    conn = reader(member)
    conn.execute("SELECT 1")  # psycopg opened a READ COMMITTED transaction
    with pytest.raises(RuntimeError, match="REPEATABLE READ"):
        open_export(conn, member.schema, "measurements", "csv", ExportFilter())
    conn.rollback()
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    assert run(conn, member, "measurements", "csv")[2] == 4
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()
