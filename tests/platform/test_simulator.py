"""The device simulator behind `hypervision demo`: its events are ChirpStack's, and its
history tells the story the dashboards are there to show (no services needed)."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from chirpstack_api import integration
from google.protobuf import json_format

from hypervision.simulator import BACKFLOW_BEFORE, SILENT_SINCE, Simulator, sun_times
from hypervision.tenancy.spec import load_dir
from ingest.chirpstack import Envelope, parse
from ingest.decode import Catalogue

REPO = Path(__file__).resolve().parents[2]
PARIS = ZoneInfo("Europe/Paris")
# A Friday noon: the five days before it hold a weekend, Locmaria's Monday and Thursday
# collection rounds, school days and nights.
END = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def locmaria() -> tuple[Simulator, dict[str, list[tuple[datetime, dict[str, Any]]]]]:
    """Five days of Locmaria's history: per device name, (time, decoded object)."""
    specs = [s for s in load_dir(REPO / "tenants") if s.name == "locmaria"]
    simulator = Simulator(specs, Catalogue.load(), seed=3, end=END)
    readings: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    times = []
    for topic, payload in simulator.events(simulator.schedule(END - timedelta(days=5), END)):
        body = json.loads(payload)
        at = datetime.fromisoformat(body["time"].replace("000+00:00", "+00:00"))
        times.append(at)
        if topic.endswith("/event/up"):
            readings[body["deviceInfo"]["deviceName"]].append((at, body["object"]))
    assert times == sorted(times)
    return simulator, readings


def test_an_uplink_is_what_protobuf_reads_and_writes_back_unchanged() -> None:
    simulator = Simulator(load_dir(REPO / "tenants"), Catalogue.load(), seed=5)
    models = set()
    for device in simulator.devices:
        if device.model_id in models:
            continue
        models.add(device.model_id)
        topic, payload = simulator.uplink(device)
        body = json.loads(payload)
        # Strict: a field ChirpStack's message does not have is an error.
        event = json_format.ParseDict(body, integration.UplinkEvent())
        again = json_format.MessageToDict(event, always_print_fields_with_no_presence=True)
        again["rxInfo"] = [json_format.MessageToDict(rx) for rx in event.rx_info]
        again["txInfo"] = json_format.MessageToDict(event.tx_info)
        for item in (body, again, *body["rxInfo"], *again["rxInfo"]):
            for key in {"time", "nsTime"} & set(item):
                item[key] = datetime.fromisoformat(item[key].replace("000+00:00", "+00:00")
                                                   .replace("Z", "+00:00"))
        assert again == body
        assert base64.b64decode(body["data"])
        # And the pipeline's own strict parsing takes it.
        parsed = parse(Envelope.from_topic(topic, payload, END.timestamp()), 10_000)
        assert (parsed.kind, parsed.dev_eui) == ("up", device.dev_eui)
    assert models == {"milesight-em300-di", "milesight-em400-mud", "milesight-am103",
                      "milesight-ws558"}


def test_every_device_reports_at_its_models_interval_and_the_silent_one_stops(
        locmaria: Any) -> None:
    simulator, readings = locmaria
    for device in simulator.devices:
        times = [t for t, _ in readings[device.name]]
        gaps = sorted((b - a).total_seconds() for a, b in pairwise(times))
        if "gap" in device.roles:  # one gap of five hours, a coverage loss
            assert 5 * 3600 < gaps.pop() < 5.2 * 3600
        assert 0.95 * device.interval_s < gaps[0] <= gaps[-1] < 1.05 * device.interval_s
        if "silent" in device.roles:
            assert END - SILENT_SINCE - times[-1] < timedelta(seconds=device.interval_s * 1.1)
        else:
            assert END - times[-1] < timedelta(seconds=device.interval_s * 1.1)


def test_water_meters_follow_the_day_one_leaks_at_night_one_runs_backwards(
        locmaria: Any) -> None:
    _, readings = locmaria
    night_flows: dict[str, list[float]] = {}
    for name in ("Compteur d'eau 1", "Compteur d'eau 2"):
        series = readings[name]
        steps = [(a, b["pulse"] - a_obj["pulse"]) for (a, a_obj), (_, b) in
                 pairwise(series)]
        night = sum(p for t, p in steps if 1 <= t.astimezone(PARIS).hour < 5)
        evening = sum(p for t, p in steps if 18 <= t.astimezone(PARIS).hour < 22)
        night_flows[name] = [night, evening]
        backwards = [(t, p) for t, p in steps if p < 0]
        if name == "Compteur d'eau 2":
            assert len(backwards) == 1
            assert abs(backwards[0][0] - (END - BACKFLOW_BEFORE)) < timedelta(minutes=20)
        else:
            assert backwards == []
    # The leaking meter counts all night, every night; the other hardly at all.
    leak_night, _ = night_flows["Compteur d'eau 1"]
    quiet_night, quiet_evening = night_flows["Compteur d'eau 2"]
    assert leak_night > 5 * 2.5 * 4 * 0.8  # 25 L/h at 10 L a pulse, 4 h, 5 nights
    assert quiet_night < 3
    assert quiet_evening > 10 * quiet_night


def test_containers_fill_up_and_are_emptied_on_round_days_only(locmaria: Any) -> None:
    simulator, readings = locmaria
    rounds = {d for spec_days in [simulator.devices[0].analytics.waste.round_days]
              for d in spec_days}
    assert rounds == {"mon", "thu"}
    emptied = []
    for name in ("Conteneur verre 1", "Conteneur verre 2"):
        series = readings[name]
        for (_, a), (t, b) in pairwise(series):
            if b["distance"] - a["distance"] > 0.3 * 1500:  # a fall of 30 points of fill
                emptied.append(t.astimezone(PARIS))
    assert emptied
    assert {t.strftime("%a").lower()[:3] for t in emptied} <= rounds
    assert all(9 <= t.hour < 12 for t in emptied)
    # The container the rounds passed by is to be collected (80 % full or more) by now.
    missed = next(d for d in simulator.devices if "missed" in d.roles)
    assert readings[missed.name][-1][1]["distance"] <= 0.2 * 1500


def test_classrooms_co2_rises_when_the_school_is_open(locmaria: Any) -> None:
    _, readings = locmaria
    for name in ("Air salle 1",):
        open_hours = [o["co2"] for t, o in readings[name]
                      if t.astimezone(PARIS).weekday() in (0, 1, 3)
                      and 10 <= t.astimezone(PARIS).hour < 12]
        nights = [o["co2"] for t, o in readings[name] if t.astimezone(PARIS).hour < 6]
        weekend = [o["co2"] for t, o in readings[name] if t.astimezone(PARIS).weekday() >= 5]
        assert min(open_hours) > 900
        assert max(nights) < 650
        assert max(weekend) < 650


def test_street_lights_burn_from_dusk_to_23h_and_from_6h_to_dawn(locmaria: Any) -> None:
    simulator, readings = locmaria
    series = readings["Éclairage public bourg"]
    assert "daylight" in simulator.devices[-1].roles  # the other cabinet
    for t, o in series:
        local = t.astimezone(PARIS)
        sunrise, sunset = sun_times(t.date())
        lit = (t < sunrise or t >= sunset) and 6 <= local.hour < 23
        assert (o["active_power"] > 500) == lit, (local, o["active_power"])
        assert o["switch_1"] == ("on" if lit else "off")
    energy = [o["power_consumption"] for _, o in series]
    assert energy == sorted(energy) and energy[-1] - energy[0] > 5 * 1000


def test_one_battery_runs_down_the_others_stay_up(locmaria: Any) -> None:
    simulator, readings = locmaria
    for device in simulator.devices:
        if device.category == "lighting":
            continue  # mains powered
        levels = [o["battery"] for _, o in readings[device.name]]
        if "battery" in device.roles:
            assert levels[0] > levels[-1] and levels[-1] < 20
        else:  # about a point a month
            assert min(levels) >= 60 and levels[0] - levels[-1] <= 1


def test_one_lighting_cabinet_burns_after_dawn(locmaria: Any) -> None:
    _, readings = locmaria
    mornings = [(t, o) for t, o in readings["Éclairage public zone d'activités"]
                if sun_times(t.date())[0] + timedelta(minutes=20) < t
                < sun_times(t.date())[0] + timedelta(minutes=90)]
    assert mornings and all(o["active_power"] > 500 for _, o in mornings)


def test_one_meter_has_a_day_of_unusual_consumption(locmaria: Any) -> None:
    simulator, readings = locmaria
    meter = next(d for d in simulator.devices if "abnormal" in d.roles)
    per_day: dict[Any, float] = defaultdict(float)
    series = readings[meter.name]
    for (_, a), (t, b) in pairwise(series):
        per_day[t.astimezone(PARIS).date()] += max(0.0, b["pulse"] - a["pulse"])
    unusual = (END.astimezone(PARIS) - timedelta(days=2)).date()
    others = [v for day, v in per_day.items() if day != unusual and day.weekday() < 5]
    assert per_day[unusual] > 2 * max(others)
