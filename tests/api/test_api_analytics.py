"""The analytics and alerts endpoints: figures computed by hand from readings written into
member alpha's tables and one refresh of its rollups, personal data withheld from
operators without a grant, alerts acknowledged and closed with their audit entries, and
the API role's narrow privileges on the alerts table."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision.analytics import members, rollups
from hypervision.db import connect_admin, connect_as
from ingest.decode.metrics import METRICS
from tests.api.conftest import AIR, BIN, WATER, World

pytestmark = pytest.mark.services

ALICE = "user:alice@alpha.example.org"
BASE = "/api/v1/members/alpha"


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def put(conn: psycopg.Connection, dev_eui: str, metric: str,
        readings: Iterable[tuple[dt.datetime, float]]) -> None:
    """Readings as the pipeline writes them, one uplink id each."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tenant_alpha.measurements (time, dev_eui, metric, value, unit,"
            " deduplication_id) VALUES (%s, %s, %s, %s, %s, %s)",
            [(t, dev_eui, metric, float(v), METRICS[metric].unit, uuid.uuid4())
             for t, v in readings],
        )


# The water meter (its index in litres):
#   2025-02-03 10:00Z 1000, 11:00 1100, 12:00 1400, 13:00 1450, 14:00 1300 (a backflow of
#   150 L, the index going back by more than a new meter's 100 L);
#   then nothing until 2025-03-09 22:00Z, still 1300 (a gap: 0 L spread over its hours,
#   which are estimated), then +10 L every hour until 2025-03-12 05:00Z (55 hours, 550 L,
#   index 1850): three nights in a row never at zero flow, a leak.
LEAK_START = utc(2025, 3, 9, 22)
WATER_READINGS = [(utc(2025, 2, 3, 10), 1000), (utc(2025, 2, 3, 11), 1100),
                  (utc(2025, 2, 3, 12), 1400), (utc(2025, 2, 3, 13), 1450),
                  (utc(2025, 2, 3, 14), 1300)] + [
    (LEAK_START + dt.timedelta(hours=i), 1300 + 10 * i) for i in range(56)]
# The bin, at 08:00Z each day: 90 %, emptied (85 points down: a collection), then 20
# points a day.
BIN_READINGS = [(utc(2025, 2, day, 8), level)
                for day, level in ((1, 90), (2, 5), (3, 25), (4, 45), (5, 65), (6, 85))]
# The classroom on Monday 2025-02-03, occupied 08:00-17:00 Paris (07:00-16:00Z); the
# sensor's usual interval is 600 s, so a reading holds 20 minutes at most.
AIR_READINGS = [(utc(2025, 2, 3, 8, 0), 1200), (utc(2025, 2, 3, 8, 10), 1800),
                (utc(2025, 2, 3, 8, 20), 700)]


WRITTEN = ((WATER, "water.index", WATER_READINGS), (BIN, "fill.level", BIN_READINGS),
           (AIR, "air.co2", AIR_READINGS))


@pytest.fixture(scope="module", autouse=True)
def refreshed(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The readings above, then one refresh of alpha's rollups (default settings). The
    readings go afterwards: other modules count alpha's measurements."""
    settings = world.settings.model_copy(
        update={"analytics_dir": Path(tmp_path_factory.mktemp("analytics"))})
    with connect_admin(world.settings) as conn:
        for dev_eui, metric, readings in WRITTEN:
            put(conn, dev_eui, metric, readings)
        result = rollups.refresh(conn, members.member(conn, "alpha"), settings)
        assert result.skipped is None
    yield
    with connect_admin(world.settings) as conn:
        for dev_eui, metric, _ in WRITTEN:
            conn.execute("DELETE FROM tenant_alpha.measurements WHERE dev_eui = %s"
                         " AND metric = %s", (dev_eui, metric))


def get(client: Any, world: World, path: str, persona: str = "alpha", **params: Any) -> Any:
    response = client.get(BASE + path, params=params, headers=world.headers(persona))
    assert response.status_code == 200, response.text
    return response.json()


# Water ----------------------------------------------------------------------------------


def test_hourly_consumption_is_each_step_of_the_index(client: Any, world: World) -> None:
    body = get(client, world, f"/water/{WATER}/consumption", bucket="hour",
               start="2025-02-03T10:00:00Z", end="2025-02-03T15:00:00Z")
    assert [(when(r["start"]), r["volume_l"], r["estimated"]) for r in body["rows"]] == [
        (utc(2025, 2, 3, 10), 100.0, False), (utc(2025, 2, 3, 11), 300.0, False),
        (utc(2025, 2, 3, 12), 50.0, False), (utc(2025, 2, 3, 13), -150.0, False),
        (utc(2025, 2, 3, 14), 0.0, True)]
    assert body["total_l"] == 300.0
    assert body["estimated"] is True


def test_daily_and_monthly_consumption_follow_the_members_local_calendar(
    client: Any, world: World,
) -> None:
    day = get(client, world, f"/water/{WATER}/consumption", bucket="day",
              start="2025-02-03T00:00:00+01:00", end="2025-02-04T00:00:00+01:00")
    # Paris's 3 February: 100 + 300 + 50 - 150 L, and the gap's hours 14:00-22:00Z (0 L,
    # estimated): 13 hours in all.
    assert [(when(r["start"]), r["volume_l"], r["estimated"], r["hours"])
            for r in day["rows"]] == [(utc(2025, 2, 2, 23), 300.0, True, 13)]
    assert day["timezone"] == "Europe/Paris"
    month = get(client, world, f"/water/{WATER}/consumption", bucket="month",
                start="2025-02-01T00:00:00+01:00", end="2025-04-01T00:00:00+02:00")
    assert [(when(r["start"]), r["volume_l"]) for r in month["rows"]] == [
        (utc(2025, 1, 31, 23), 300.0), (utc(2025, 2, 28, 23), 550.0)]


@pytest.mark.parametrize(("at", "index", "method", "estimated"), [
    ("2025-02-03T11:30:00Z", 1250.0, "interpolated", True),  # 1100 + 300 / 2
    ("2025-02-03T12:00:00Z", 1400.0, "measured", False),
    ("2025-02-03T13:30:00Z", 1375.0, "interpolated", True),  # 1450 - 150 / 2
    ("2025-02-20T00:00:00Z", 1300.0, "interpolated", True),  # across the gap
    ("2025-04-01T00:00:00Z", 1850.0, "last-reading", True),
    ("2025-01-15T00:00:00Z", None, "no-reading", True),
])
def test_the_billing_index_at_a_time_says_how_it_was_obtained(
    client: Any, world: World, at: str, index: float | None, method: str, estimated: bool,
) -> None:
    body = get(client, world, f"/water/{WATER}/index", at=at)
    assert (body["index_l"], body["method"], body["estimated"]) == (index, method, estimated)


def test_the_interpolated_index_names_the_readings_around_it(client: Any, world: World) -> None:
    body = get(client, world, f"/water/{WATER}/index", at="2025-02-03T11:30:00Z")
    assert (when(body["before"]["time"]), body["before"]["index_l"]) == (
        utc(2025, 2, 3, 11), 1100.0)
    assert (when(body["after"]["time"]), body["after"]["index_l"]) == (
        utc(2025, 2, 3, 12), 1400.0)


def test_three_nights_without_zero_flow_are_a_leak(client: Any, world: World) -> None:
    body = get(client, world, "/water/leaks", night="2025-03-12")
    assert [(x["dev_eui"], x["name"], x["nights"], x["first_night"], x["min_flow_l_h"])
            for x in body["items"]] == [(WATER, "Water A1", 3, "2025-03-10", 10.0)]
    # The night ending on the 13th has no reading: nothing proves flow then.
    assert get(client, world, "/water/leaks", night="2025-03-13")["items"] == []
    assert [x["dev_eui"] for x in get(client, world, "/water/leaks", night="2025-03-11",
                                      nights=2)["items"]] == [WATER]


def test_events_list_the_backflow_and_the_gap(client: Any, world: World) -> None:
    body = get(client, world, "/water/events", start="2025-02-01T00:00:00Z",
               end="2025-04-01T00:00:00Z")
    assert [(when(e["time"]), e["kind"], e["index_before"], e["index_after"], e["volume_l"])
            for e in body["items"]] == [
        (utc(2025, 2, 3, 14), "backflow", 1450.0, 1300.0, -150.0),
        (LEAK_START, "gap", 1300.0, 1300.0, 0.0)]
    only = get(client, world, "/water/events", start="2025-02-01T00:00:00Z",
               end="2025-04-01T00:00:00Z", kinds="backflow")
    assert [e["kind"] for e in only["items"]] == ["backflow"]


def test_abnormal_days_need_two_weeks_of_measured_history(client: Any, world: World) -> None:
    body = get(client, world, "/water/abnormal", start="2025-02-01", end="2025-03-31")
    assert body["items"] == []
    assert (body["start"], body["end"]) == ("2025-02-01", "2025-03-31")


# Waste ----------------------------------------------------------------------------------


def test_a_container_has_its_fill_rate_since_the_last_collection(
    client: Any, world: World,
) -> None:
    body = get(client, world, "/waste/containers", at="2025-02-05T12:00:00Z")
    [bin_] = body["items"]
    assert bin_["dev_eui"] == BIN
    assert bin_["level_pct"] == 65.0
    assert bin_["rate_pct_per_day"] == pytest.approx(20.0)
    # (100 - 65) / 20 days after the reading of the 5th at 08:00Z.
    assert bin_["days_until_full"] == pytest.approx(1.75)
    assert when(bin_["full_at"]) == utc(2025, 2, 7, 2)
    assert when(bin_["last_collection"]) == utc(2025, 2, 2, 8)
    # Full after the next round (Thursday 6th), so not on Wednesday's list.
    assert (bin_["next_round"], bin_["to_empty"], bin_["reason"]) == ("2025-02-06", False, "")
    assert get(client, world, "/waste/today", at="2025-02-05T12:00:00Z")["items"] == []


def test_a_container_above_the_threshold_is_on_todays_list(client: Any, world: World) -> None:
    body = get(client, world, "/waste/today", at="2025-02-06T12:00:00Z")
    assert [(c["dev_eui"], c["level_pct"], c["reason"]) for c in body["items"]] == [
        (BIN, 85.0, "level")]
    assert body["items"][0]["days_until_full"] == pytest.approx(0.75)


def test_collections_are_the_big_falls_of_the_level(client: Any, world: World) -> None:
    body = get(client, world, "/waste/collections", start="2025-02-01T00:00:00Z",
               end="2025-02-10T00:00:00Z")
    assert [(when(c["time"]), c["dev_eui"], c["level_before"], c["level_after"])
            for c in body["items"]] == [(utc(2025, 2, 2, 8), BIN, 90.0, 5.0)]


def test_the_round_starts_from_the_depot_and_names_containers_without_coordinates(
        client: Any, world: World) -> None:
    # Alpha's depot is declared in its tenant file; its bin, at 85 %, is to collect but
    # has no coordinates: the round is the depot alone, and the bin is reported.
    body = get(client, world, "/waste/round")
    assert [(s["position"], s["dev_eui"], s["lat"], s["lon"]) for s in body["stops"]] == [
        (0, None, 47.99, -4.11), (1, None, 47.99, -4.11)]
    assert (body["containers"], body["distance_m"], body["not_placed"]) == (0, 0.0, [BIN])
    assert body["distances"] == "straight-line"


def test_the_billing_run_streams_one_line_per_meter_and_is_audited_as_an_export(
        client: Any, world: World, admin_conn: psycopg.Connection) -> None:
    # Billing date 11 March 2025 (2025-03-10 23:00Z): 25 hours after the leak's first
    # reading, a reading: 1300 + 250 = 1550 L, measured. Since 3 February (local
    # midnight): +300 L, the backflow of 150 L, the gap (0 L), then 250 L: 550 L; no
    # reading before the period's start.
    response = client.get(f"{BASE}/billing.csv", params={"date": "2025-03-11",
                                                          "from": "2025-02-03"},
                          headers=world.headers("alpha"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.content.decode("utf-8").split("\r\n")
    assert lines[0].startswith("meter_id;dev_eui;name;address;index_date;index_m3;")
    assert lines[1:] == [f"Water A1;{WATER};Water A1;;2025-03-11T00:00;1.550;0;0.0;measured;"
                         "2025-02-03T00:00;;0.550;reverse-flow,gap", ""]
    row = admin_conn.execute(
        "SELECT action, target, rows, params ->> 'date', params ->> 'completed'"
        " FROM hv.audit_log WHERE request_id = %s", (response.headers["x-request-id"],)
    ).fetchone()
    assert row == ("export.csv", "billing", 1, "2025-03-11", "true")
    refused = client.get(f"{BASE}/billing.csv", params={"date": "2025-03-11",
                                                         "from": "2025-03-11"},
                         headers=world.headers("alpha"))
    assert refused.status_code == 400 and "must start before" in refused.text


# Indoor air -----------------------------------------------------------------------------


def test_a_room_has_its_time_above_thresholds_and_icone(client: Any, world: World) -> None:
    body = get(client, world, "/air/rooms", start="2025-02-03T00:00:00Z",
               end="2025-02-04T00:00:00Z")
    [room] = body["rooms"]
    # Above 800 ppm from 08:00 to 08:20, above 1500 from 08:10 to 08:20; the sensor's
    # rows cover the hour 08:00Z, fully occupied. One reading per ICONE band: f1 = f2 = 1/3,
    # (2.5 / log10 2) * log10(1 + 1/3 + 1) = 3.06, so 3.
    assert (room["building"], room["room"]) == ("", "Air A3")
    assert (room["occupied_s"], room["above_low_s"], room["above_high_s"]) == (3600, 1200, 600)
    assert room["above_low_share"] == pytest.approx(1 / 3)
    assert room["above_high_share"] == pytest.approx(1 / 6)
    assert (room["n0"], room["n1"], room["n2"], room["icone"], room["icone_label"]) == (
        1, 1, 1, 3, "élevé")
    assert (body["low_ppm"], body["high_ppm"]) == (800.0, 1500.0)


def test_room_hours_give_the_hourly_co2(client: Any, world: World) -> None:
    body = get(client, world, "/air/room-hours", start="2025-02-03T08:00:00Z",
               end="2025-02-03T09:00:00Z")
    [hour] = body["rows"]
    assert when(hour["hour"]) == utc(2025, 2, 3, 8)
    assert hour["co2_avg"] == pytest.approx((1200 + 1800 + 700) / 3)
    assert hour["co2_max"] == 1800.0
    assert hour["temperature_avg"] is None
    assert (hour["occupied_s"], hour["above_low_s"], hour["above_high_s"]) == (3600, 1200, 600)


# Health ---------------------------------------------------------------------------------


def test_health_lists_every_active_device_and_no_gateway(client: Any, world: World) -> None:
    body = get(client, world, "/health/devices", at="2025-02-07T00:00:00Z")
    # The fixtures write uplinks without the device state: never heard counts as silent.
    assert [(d["dev_eui"], d["silent"]) for d in body["items"]] == [
        (WATER, True), (BIN, True), (AIR, True)]
    assert get(client, world, "/health/gateways", at="2025-02-07T00:00:00Z")["items"] == []


# Personal data --------------------------------------------------------------------------


def test_an_operator_without_grant_gets_no_water_consumption(client: Any, world: World) -> None:
    for path in (f"/water/{WATER}/consumption", f"/water/{WATER}/index"):
        response = client.get(BASE + path, headers=world.headers("op"))
        assert response.status_code == 403 and "grant" in response.json()["detail"]
    leaks = get(client, world, "/water/leaks", "op", night="2025-03-12")
    assert (leaks["items"], leaks["withheld_devices"]) == ([], 1)
    health = get(client, world, "/health/devices", "op", at="2025-02-07T00:00:00Z")
    assert [d["dev_eui"] for d in health["items"]] == [BIN, AIR]
    assert health["withheld_devices"] == 1
    events = client.get(BASE + "/water/events", params={"devices": WATER},
                        headers=world.headers("op"))
    assert events.status_code == 403


def test_an_operator_with_a_grant_reads_it_and_the_grant_is_in_the_trail(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    response = client.get(BASE + f"/water/{WATER}/consumption", headers=world.headers("op_grant"),
                          params={"bucket": "month", "start": "2025-02-01T00:00:00+01:00",
                                  "end": "2025-03-01T00:00:00+01:00"})
    assert response.status_code == 200
    assert [r["volume_l"] for r in response.json()["rows"]] == [300.0]
    row = admin_conn.execute(
        "SELECT actor, action, target, params ->> 'grant', rows FROM hv.audit_log"
        " WHERE request_id = %s", (response.headers["x-request-id"],)).fetchone()
    assert row is not None
    assert row[:3] == ("user:oscar@syndic.example.org", "water.consumption.read", WATER)
    assert row[3] is not None and row[4] == 1


# Audit of reads -------------------------------------------------------------------------

READS = [
    (f"/water/{WATER}/consumption", {"bucket": "hour", "start": "2025-02-03T10:00:00Z",
                                     "end": "2025-02-03T15:00:00Z"},
     "water.consumption.read", WATER, 5),
    (f"/water/{WATER}/index", {"at": "2025-02-03T12:00:00Z"}, "water.index.read", WATER, 1),
    ("/water/leaks", {"night": "2025-03-12"}, "water.leaks.read", "*", 1),
    ("/water/events", {"start": "2025-02-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"},
     "water.events.read", "*", 2),
    ("/water/abnormal", {"start": "2025-03-01", "end": "2025-03-31"}, "water.abnormal.read",
     "*", 0),
    ("/waste/containers", {"at": "2025-02-05T12:00:00Z"}, "waste.containers.read", "*", 1),
    ("/waste/today", {"at": "2025-02-06T12:00:00Z"}, "waste.today.read", "*", 1),
    ("/waste/collections", {"start": "2025-02-01T00:00:00Z", "end": "2025-02-10T00:00:00Z"},
     "waste.collections.read", "*", 1),
    ("/air/rooms", {"start": "2025-02-03T00:00:00Z", "end": "2025-02-04T00:00:00Z"},
     "air.rooms.read", "*", 1),
    ("/air/room-hours", {"start": "2025-02-03T08:00:00Z", "end": "2025-02-03T09:00:00Z"},
     "air.room_hours.read", "*", 1),
    ("/health/devices", {"at": "2025-02-07T00:00:00Z"}, "health.devices.read", "*", 3),
    ("/health/gateways", {}, "health.gateways.read", "*", 0),
    ("/alerts", {"state": "closed", "limit": 1}, "alerts.read", "*", None),
]


@pytest.mark.parametrize(("path", "params", "action", "target", "rows"), READS,
                         ids=[r[2] for r in READS])
def test_every_read_leaves_an_audit_entry(
    client: Any, world: World, admin_conn: psycopg.Connection, path: str,
    params: dict[str, Any], action: str, target: str, rows: int | None,
) -> None:
    response = client.get(BASE + path, params=params, headers=world.headers("alpha"))
    assert response.status_code == 200, response.text
    row = admin_conn.execute(
        "SELECT actor, member_slug, action, target, rows, source, (params ->> 'token')::bigint"
        " FROM hv.audit_log WHERE request_id = %s", (response.headers["x-request-id"],)
    ).fetchone()
    assert row is not None
    assert row[:4] == (ALICE, "alpha", action, target)
    assert rows is None or row[4] == rows
    assert row[5:] == ("api", world.token_ids["alpha"])


# Alerts ---------------------------------------------------------------------------------


def post(client: Any, world: World, alert_id: int, action: str, persona: str = "alpha",
         reason: str | None = None) -> Any:
    kwargs = {"json": {"reason": reason}} if reason is not None else {}
    return client.post(f"{BASE}/alerts/{alert_id}/{action}", headers=world.headers(persona),
                       **kwargs)


def ids(client: Any, world: World, persona: str = "alpha", **params: Any) -> set[int]:
    return {a["id"] for a in get(client, world, "/alerts", persona, limit=1000,
                                 **params)["items"]}


def test_an_alert_is_acknowledged_then_closed_and_both_are_audited(
    client: Any, world: World, admin_conn: psycopg.Connection,
) -> None:
    alert = world.fresh_alert()
    assert alert in ids(client, world, state="open")

    acked = post(client, world, alert, "acknowledge")
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", ALICE)
    assert acked.json()["acknowledged_at"] is not None
    assert post(client, world, alert, "acknowledge").status_code == 409
    assert alert in ids(client, world, state="acknowledged")
    assert alert not in ids(client, world, state="open")

    closed = post(client, world, alert, "close", reason="conteneur vidé hors tournée")
    assert closed.status_code == 200, closed.text
    assert (closed.json()["state"], closed.json()["closed_by"], closed.json()["close_reason"]) \
        == ("closed", ALICE, "conteneur vidé hors tournée")
    again = post(client, world, alert, "close", reason="twice")
    assert again.status_code == 409 and "closed" in again.json()["detail"]

    trail = admin_conn.execute(
        "SELECT actor, member_slug, action, before, after, params ->> 'reason', source"
        " FROM hv.audit_log WHERE member_slug = 'alpha' AND target = %s ORDER BY id",
        (f"alert:{alert}",)).fetchall()
    assert trail == [
        (ALICE, "alpha", "alerts.acknowledge", {"state": "open"}, {"state": "acknowledged"},
         None, "api"),
        (ALICE, "alpha", "alerts.close", {"state": "acknowledged"}, {"state": "closed"},
         "conteneur vidé hors tournée", "api"),
    ]
    assert admin_conn.execute(
        "SELECT state, acknowledged_by, closed_by FROM tenant_alpha.alerts WHERE id = %s",
        (alert,)).fetchone() == ("closed", ALICE, ALICE)


def test_an_open_alert_can_be_closed_without_acknowledging_it(
    client: Any, world: World,
) -> None:
    closed = post(client, world, world.fresh_alert(), "close", reason="fausse alerte")
    assert closed.status_code == 200 and closed.json()["acknowledged_at"] is None


def test_a_reader_cannot_acknowledge_or_close(client: Any, world: World) -> None:
    alert = world.fresh_alert()
    assert post(client, world, alert, "acknowledge", "alpha_read").status_code == 403
    assert post(client, world, alert, "close", "alpha_read", reason="no").status_code == 403
    assert alert in ids(client, world, "alpha_read", state="open")


def test_changing_an_alert_that_does_not_exist_or_without_a_reason_is_refused(
    client: Any, world: World,
) -> None:
    assert post(client, world, 2**62, "acknowledge").status_code == 404
    alert = world.fresh_alert()
    assert client.post(f"{BASE}/alerts/{alert}/close",
                       headers=world.headers("alpha")).status_code == 422
    assert post(client, world, alert, "close", reason="").status_code == 422
    assert client.get(BASE + "/alerts", params={"state": "forgotten"},
                      headers=world.headers("alpha")).status_code == 422


def test_an_alert_on_a_water_meter_is_withheld_from_operators_without_grant(
    client: Any, world: World,
) -> None:
    alert = world.fresh_alert(WATER)
    assert alert not in ids(client, world, "op")
    assert get(client, world, "/alerts", "op")["withheld_devices"] == 1
    assert post(client, world, alert, "acknowledge", "op").status_code == 403
    assert alert in ids(client, world, "op_grant")
    response = post(client, world, alert, "acknowledge", "op_grant")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "user:oscar@syndic.example.org"


def test_the_api_role_changes_only_the_state_of_alerts_and_reads_nothing_else(
    world: World,
) -> None:
    alert = world.fresh_alert()
    with connect_as(world.settings, world.settings.api_role, autocommit=True) as conn:
        assert conn.execute("SELECT id, state FROM tenant_alpha.alerts WHERE id = %s",
                            (alert,)).fetchone() == (alert, "open")
        for statement in ("SELECT message FROM tenant_alpha.alerts LIMIT 1",
                          "UPDATE tenant_alpha.alerts SET message = 'x'",
                          "DELETE FROM tenant_alpha.alerts",
                          "SELECT 1 FROM tenant_alpha.water_hourly LIMIT 1",
                          "SELECT 1 FROM tenant_alpha.alert_notifications LIMIT 1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with connect_as(world.settings, "alpha_reader", autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE tenant_alpha.alerts SET state = 'closed' WHERE id = %s", (alert,))


# Bad input ------------------------------------------------------------------------------

BAD = [
    (f"/water/{WATER}/consumption", {"start": "2025-02-04T00:00:00Z",
                                     "end": "2025-02-03T00:00:00Z"}, 400),
    (f"/water/{WATER}/consumption", {"bucket": "week"}, 422),
    (f"/water/{WATER}/consumption", {"bucket": "hour", "start": "2025-01-01T00:00:00Z",
                                     "end": "2025-03-01T00:00:00Z"}, 400),
    (f"/water/{WATER}/consumption", {"start": "2000-01-01T00:00:00Z",
                                     "end": "2025-01-01T00:00:00Z"}, 400),
    ("/water/ffffffffffffffff/consumption", {}, 404),
    (f"/water/{BIN}/index", {}, 404),
    ("/water/NOT-A-EUI/index", {}, 422),
    (f"/water/{WATER}/index", {"at": "0001-01-01T00:00:00Z"}, 400),
    ("/water/leaks", {"nights": 0}, 422),
    ("/water/leaks", {"night": "0001-01-01"}, 400),
    ("/water/events", {"kinds": "flood"}, 400),
    ("/water/abnormal", {"start": "2025-03-02", "end": "2025-03-01"}, 400),
    ("/water/abnormal", {"start": "2020-01-01", "end": "2025-03-01"}, 400),
    ("/air/room-hours", {"start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z"}, 400),
    ("/waste/containers", {"at": "tomorrow"}, 422),
]


@pytest.mark.parametrize(("path", "params", "status"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_gets_a_clear_client_error(client: Any, world: World, path: str,
                                             params: dict[str, Any], status: int) -> None:
    response = client.get(BASE + path, params=params, headers=world.headers("alpha"))
    assert response.status_code == status, response.text
    assert response.json()["detail"]
