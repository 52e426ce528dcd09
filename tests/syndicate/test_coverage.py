"""Radio coverage from the uplinks' rxInfo, over October 2026: bourg's first meter is
heard by two gateways, its second by one (at risk), plage's first by one with a poor
margin every day for eight days (an alert, closed when a good frame comes), plage's
second by none; gateway a002 hears nobody. The map is an SVG without outside tiles,
looked at in Chromium."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from PIL import Image
from psycopg import sql

from hypervision.settings import Settings
from hypervision.syndicate import coverage, coverage_map
from tests.syndicate.conftest import NETWORK

END = dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
START = END - dt.timedelta(days=30)
DAY = dt.timedelta(days=1)
A1, A2, A3 = "5e1d00000000a001", "5e1d00000000a002", "5e1d00000000a003"
B1, B2 = "5e1d0c0c00000001", "5e1d0c0c00000002"
P1, P2 = "5e1d0d0d00000001", "5e1d0d0d00000002"


def frame(conn: psycopg.Connection[Any], member: str, dev_eui: str, t: dt.datetime, sf: int,
          heard: list[tuple[str, int, float]]) -> None:
    """One uplink as ChirpStack reports it: each gateway's id, RSSI and SNR in rxInfo."""
    event = {"devEui": dev_eui, "rxInfo": [{"gatewayId": gid.upper(), "rssi": rssi, "snr": snr}
                                           for gid, rssi, snr in heard],
             "txInfo": {"modulation": {"lora": {"spreadingFactor": sf}}}}
    conn.execute(sql.SQL(
        "INSERT INTO {} (time, received_at, dev_eui, deduplication_id, f_cnt, f_port, data,"
        " spreading_factor, event) VALUES (%s, %s, %s, gen_random_uuid(), 1, 1,"
        " '\\x00'::bytea, %s, %s::json)").format(sql.Identifier(f"tenant_{member}", "uplinks")),
        (t, t, dev_eui, sf, json.dumps(event)))


@pytest.fixture
def radio(network_db: Settings, admin: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn = admin
    for member in ("bourg", "plage"):
        conn.execute(sql.SQL("DELETE FROM {} WHERE time >= %s AND time < %s").format(
            sql.Identifier(f"tenant_{member}", "uplinks")), (START - 30 * DAY, END + 30 * DAY))
        conn.execute(sql.SQL("TRUNCATE {}, {}").format(
            sql.Identifier(f"tenant_{member}", "alert_notifications"),
            sql.Identifier(f"tenant_{member}", "alerts")))
    for i in range(3):
        t = END - (i + 1) * DAY
        # SF7 needs -7.5 dB: best SNR 5 gives a 12.5 dB margin.
        frame(conn, "bourg", B1, t, 7, [(A1, -100, 5.0), (A3, -110, -2.0)])
        # SF9 needs -12.5 dB: SNR -10 gives 2.5 dB, from one gateway only.
        frame(conn, "bourg", B2, t, 9, [(A3, -118, -10.0)])
    # Eight days of SF12 frames at SNR -17 (needs -20): a 3 dB margin every day.
    for i in range(8):
        frame(conn, "plage", P1, END - dt.timedelta(hours=12) - i * DAY, 12, [(A1, -121, -17.0)])
    return conn


def _coverage(conn: psycopg.Connection[Any]) -> coverage.Coverage:
    @contextmanager
    def same(_: str) -> Iterator[psycopg.Connection[Any]]:
        yield conn

    gateways = coverage.network_gateways(conn, coverage.declared_gateways(NETWORK))
    return coverage.coverage(conn, same, [("bourg", "tenant_bourg"), ("plage", "tenant_plage")],
                             gateways, START, END)


@pytest.mark.services
def test_coverage_says_who_hears_each_device_and_who_is_at_risk(
    radio: psycopg.Connection[Any], network_db: Settings,
) -> None:
    c = _coverage(radio)
    devices = {d.dev_eui: d for d in c.devices}
    assert devices[B1].gateways == [A1, A3] and not devices[B1].at_risk
    assert devices[B1].margin_db == 5.0 + 7.5
    link = next(x for x in devices[B1].links if x.gateway_id == A1)
    assert (link.frames, link.rssi_mean, link.snr_best) == (3, -100, 5.0)
    assert devices[B2].gateways == [A3] and devices[B2].at_risk
    assert devices[B2].margin_db == -10.0 + 12.5
    assert devices[P1].margin_db == -17.0 + 20.0
    assert devices[P2].links == [] and [d.dev_eui for d in c.unheard] == [P2]
    assert {d.dev_eui for d in c.at_risk} == {B2, P1}
    # Among the declared gateways (others may have been synced by other tests).
    assert [g.gateway_id for g in c.idle_gateways if g.gateway_id in (A1, A2, A3)] == [A2]
    assert coverage.to_csv(c).count(f"bourg,{B1},") == 2

    picture = coverage_map.svg(c, "Couverture radio (test)")
    root = ET.fromstring(picture)
    ns = "{http://www.w3.org/2000/svg}"
    kinds = [g.get("class") for g in root.iter(f"{ns}g")]
    assert kinds.count("gateway") == len([g for g in c.gateways if g.lat is not None])
    assert sorted(k for k in kinds if k and k.startswith("device")) == [
        "device at-risk", "device at-risk", "device covered", "device unheard"]
    assert "http" not in picture.replace("http://www.w3.org/2000/svg", "")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed to look at the map"
    shots = network_db.data_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    page = shots / "coverage-map.svg"
    page.write_text(picture, encoding="utf-8")
    png = shots / "coverage-map.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={png}", "--window-size=760,580",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    colours = Image.open(png).convert("RGB").getcolors(1 << 20) or []
    found = {rgb for _, rgb in colours}
    assert {(0x2E, 0x7D, 0x32), (0xEF, 0x6C, 0x00), (0x1A, 0x23, 0x7E)} <= found


@pytest.mark.services
def test_a_week_under_the_margin_threshold_opens_an_alert_that_closes_when_it_recovers(
    radio: psycopg.Connection[Any],
) -> None:
    conn = radio
    first = coverage.check_margins(conn, "plage", "tenant_plage", END, 5.0, 7)
    assert first.opened == [P1]
    # Bourg's second meter has a poor margin too, but was heard for three days only.
    assert coverage.check_margins(conn, "bourg", "tenant_bourg", END, 5.0, 7).opened == []
    assert coverage.check_margins(conn, "plage", "tenant_plage", END, 5.0, 7).opened == []
    alert = conn.execute("SELECT condition, message, value FROM tenant_plage.alerts"
                         " WHERE dev_eui = %s AND state = 'open'", (P1,)).fetchone()
    assert alert is not None and alert[0] == "coverage_margin" and alert[2] == 3.0
    assert conn.execute("SELECT target FROM tenant_plage.alert_notifications").fetchall() == [
        ("technique@plage.example.org",)]
    # A threshold of 2 dB is met by the 3 dB frames: no alert, and the open one closes.
    assert coverage.check_margins(conn, "plage", "tenant_plage", END, 2.0, 7).closed == [P1]
    frame(conn, "plage", P1, END - dt.timedelta(hours=1), 7, [(A1, -90, 4.0)])
    again = coverage.check_margins(conn, "plage", "tenant_plage", END, 5.0, 7)
    assert again.opened == [] and again.closed == []
