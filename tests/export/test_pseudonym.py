"""Pseudonymised exports to third parties: stable keyed pseudonyms, different per member,
never the raw identifiers, personal fields dropped, times coarsened."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from hypervision.export import ExportFilter, open_export
from hypervision.pseudonym import Pseudonymiser, member_secret
from hypervision.settings import Settings
from hypervision.tenancy.spec import Recipient, TenantSpec
from tests.export.conftest import GATEWAYS, Ingest, topic, uplink_event

pytestmark = pytest.mark.services

T0 = datetime(2025, 3, 4, 9, 41, 27, 123456, tzinfo=UTC)
Reader = Callable[[TenantSpec], psycopg.Connection]


def third_party(settings: Settings, spec: TenantSpec, **kwargs: object) -> Pseudonymiser:
    recipient = next(r for r in spec.export_recipients if r.third_party)
    p = Pseudonymiser.for_recipient(settings, spec, recipient, **kwargs)  # type: ignore[arg-type]
    assert p is not None
    return p


def export(conn: psycopg.Connection, spec: TenantSpec, kind: str, fmt: str,
           p: Pseudonymiser | None) -> bytes:
    stream = open_export(conn, spec.schema, kind, fmt, ExportFilter(), p)  # type: ignore[arg-type]
    return b"".join(stream.chunks)


def raw_identifiers(spec: TenantSpec, events: list[bytes]) -> list[str]:
    found = [d.dev_eui for d in spec.devices] + [d.name for d in spec.devices]
    found += [*GATEWAYS, "01ab23cd", "12 rue des Lilas"]
    found += [json.loads(e)["deduplicationId"] for e in events]
    return found


@pytest.fixture
def stored(member: TenantSpec, ingest: Ingest) -> list[bytes]:
    events = [uplink_event(member, 0, T0, f_cnt=1), uplink_event(member, 1, T0, f_cnt=1),
              uplink_event(member, 1, T0 + timedelta(minutes=10), f_cnt=2)]
    ingest(*((topic(member, 0 if i == 0 else 1), e) for i, e in enumerate(events)))
    return events


def test_pseudonyms_are_stable_across_exports_and_never_the_raw_identifiers(
    platform_db: Settings, member: TenantSpec, reader: Reader, stored: list[bytes]
) -> None:
    conn = reader(member)
    for kind, fmt in [("uplinks", "jsonl"), ("uplinks", "csv"), ("measurements", "csv"),
                      ("uplinks", "parquet")]:
        first = export(conn, member, kind, fmt, third_party(platform_db, member))
        again = export(conn, member, kind, fmt, third_party(platform_db, member))
        assert first == again, (kind, fmt)
        text = first.decode("utf-8", errors="replace")
        for raw in raw_identifiers(member, stored):
            assert raw not in text, (kind, fmt, raw)

    p = third_party(platform_db, member)
    water, air = (d.dev_eui for d in member.devices)
    lines = export(conn, member, "measurements", "csv", p).decode().splitlines()
    assert {line.split(",")[1] for line in lines[1:]} == {p.dev_eui(water), p.dev_eui(air)}
    assert {line.split(",")[2] for line in lines[1:]} == {f"device-{p.dev_eui(water)}",
                                                          f"device-{p.dev_eui(air)}"}
    for value in (p.dev_eui(water), p.gateway_id(GATEWAYS[0])):
        assert len(value) == 16 and int(value, 16) >= 0
    dedup = p.deduplication_id(json.loads(stored[0])["deduplicationId"])
    assert dedup[14] == "8" and len(dedup) == 36  # a UUID, version 8


def test_pseudonyms_differ_per_member_and_depend_on_the_secret_key(
    platform_db: Settings, make_member: Callable[[], TenantSpec], reader: Reader, ingest: Ingest
) -> None:
    one, two = make_member(), make_member()
    ingest((topic(one, 1), uplink_event(one, 1, T0, f_cnt=1)),
           (topic(two, 1), uplink_event(two, 1, T0, f_cnt=1)))
    gateways = []
    for spec in (one, two):
        data = export(reader(spec), spec, "uplinks", "jsonl", third_party(platform_db, spec))
        gateways.append([rx["gatewayId"] for rx in json.loads(data)["rxInfo"]])
    # The same gateways heard both members' devices, under different pseudonyms.
    assert set(gateways[0]).isdisjoint(gateways[1])

    # The key is the member's secret derived from HV_SECRET_KEY: another key, other names.
    p = third_party(platform_db, one)
    other = platform_db.model_copy(
        update={"secret_key": SecretStr("another-key-another-key-another-key-0123")})
    assert third_party(other, one).dev_eui(one.devices[0].dev_eui) != p.dev_eui(
        one.devices[0].dev_eui)
    expected = hmac.new(member_secret(platform_db, one.name),
                        f"dev_eui\0{one.devices[0].dev_eui}".encode(), hashlib.sha256)
    assert p.dev_eui(one.devices[0].dev_eui) == expected.hexdigest()[:16]


def test_personal_fields_are_dropped_for_third_parties(
    platform_db: Settings, member: TenantSpec, reader: Reader, stored: list[bytes]
) -> None:
    conn = reader(member)
    p = third_party(platform_db, member)
    events = {e["deviceInfo"]["devEui"]: e for e in map(
        json.loads, export(conn, member, "uplinks", "jsonl", p).splitlines())}
    water = events[p.dev_eui(member.devices[0].dev_eui)]
    air = events[p.dev_eui(member.devices[1].dev_eui)]
    # A water meter (personal data class): only the skeleton of its uplinks remains.
    assert set(water) == {"deduplicationId", "time", "deviceInfo", "devAddr", "adr", "fCnt",
                          "fPort", "confirmed", "regionConfigId"}
    # A CO2 sensor keeps its payload and radio data, but no location, tag or context.
    assert {"data", "rxInfo", "txInfo", "dr"} <= set(air)
    assert "tags" not in air["deviceInfo"]
    for rx in air["rxInfo"]:
        assert set(rx) == {"gatewayId", "rssi", "snr", "channel", "rfChain", "crcStatus"}
    assert "location" not in json.dumps(air)

    table = pq.read_table(io.BytesIO(export(conn, member, "uplinks", "parquet", p)))
    rows = {r["dev_eui"]: r for r in table.to_pylist()}
    meter = rows[p.dev_eui(member.devices[0].dev_eui)]
    assert (meter["data_hex"], meter["rssi"], meter["gateways"]) == (None, None, None)
    sensor = rows[p.dev_eui(member.devices[1].dev_eui)]
    assert sensor["data_hex"] and sensor["rssi"] == -80
    assert sensor["gateways"] == ";".join(p.gateway_id(g) for g in GATEWAYS)


def test_times_can_be_coarsened_to_the_hour_or_the_day(
    platform_db: Settings, member: TenantSpec, reader: Reader, stored: list[bytes]
) -> None:
    conn = reader(member)
    for coarsen, expected in [("hour", "2025-03-04T09:00:00.000000Z"),
                              ("day", "2025-03-04T00:00:00.000000Z")]:
        p = third_party(platform_db, member, coarsen=coarsen)
        times = {json.loads(line)["time"]
                 for line in export(conn, member, "measurements", "jsonl", p).splitlines()}
        assert times == {expected}
        events = export(conn, member, "uplinks", "jsonl", p).splitlines()
        assert {json.loads(e)["time"] for e in events} == {expected}
    # Without coarsening, times are exact.
    p = third_party(platform_db, member)
    lines = export(conn, member, "measurements", "csv", p).decode().splitlines()
    assert lines[1].startswith("2025-03-04T09:41:27.123456Z,")


def test_a_recipient_that_is_not_a_third_party_gets_the_data_as_is(
    platform_db: Settings, member: TenantSpec
) -> None:
    internal = next(r for r in member.export_recipients if not r.third_party)
    assert Pseudonymiser.for_recipient(platform_db, member, internal) is None
    assert Pseudonymiser.for_recipient(
        platform_db, member, Recipient(name="x", third_party=True)) is not None


def test_unknown_personal_fields_and_coarsenings_are_refused(platform_db: Settings) -> None:
    secret = member_secret(platform_db, "alpha")
    with pytest.raises(ValueError, match="unknown personal field"):
        Pseudonymiser(secret, drop={"address"})
    with pytest.raises(ValueError, match="coarsen"):
        Pseudonymiser(secret, coarsen="week")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymiser(b"short")
