"""Open aggregates: per area and day, any group with fewer than k devices suppressed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
import typer
from typer.testing import CliRunner

from hypervision import opendata
from hypervision.commands import opendata as opendata_commands
from hypervision.db import connect_admin
from tests.public.conftest import Civic

D1, D2 = dt.date(2025, 3, 10), dt.date(2025, 3, 11)


def day_values(day: dt.date, values: dict[str, float]) -> list[opendata.DeviceDay]:
    return [opendata.DeviceDay(dev_eui, day, v) for dev_eui, v in values.items()]


def test_groups_smaller_than_k_are_suppressed_and_others_published() -> None:
    north = {f"n{i}": 100.0 + i for i in range(6)}
    south = {f"s{i}": 500.0 for i in range(4)}
    areas = {**dict.fromkeys(north, "Nord"), **dict.fromkeys(south, "Sud")}
    values = day_values(D1, {**north, **south, "stray": 9.0})  # no area: left out

    rows = opendata.aggregate(values, areas, k=5)
    assert rows == [
        opendata.Aggregate(D1, "Nord", sum(north.values()), 6, False),
        opendata.Aggregate(D1, "Sud", None, None, True),
    ]
    # The same groups with k=4: the south is now large enough.
    assert [r.suppressed for r in opendata.aggregate(values, areas, k=4)] == [False, False]
    # A mean (fill level) is published the same way.
    (mean, _) = opendata.aggregate(values, areas, k=5, combine="mean")
    assert mean.value == pytest.approx(sum(north.values()) / 6)
    # Suppression counts devices of that day: a group shrinks when devices are silent.
    silent = opendata.aggregate(day_values(D2, dict(list(north.items())[:4])), areas, k=5)
    assert silent == [opendata.Aggregate(D2, "Nord", None, None, True)]
    with pytest.raises(ValueError):
        opendata.aggregate(values, areas, k=1)


def paris(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone(dt.timedelta(hours=1)))


@pytest.mark.services
def test_daily_consumption_is_the_sum_of_index_increases_per_local_day(civic: Civic) -> None:
    meters = [f"d0d0d0d0d0d0{i:04x}" for i in range(6)]
    readings = [(D1, 0, 1000.0), (D1, 6, 1100.0), (D1, 23, 1300.0),   # 300 L on D1
                (D2, 1, 1350.0), (D2, 12, 50.0), (D2, 13, 80.0)]      # swap: 50 + 30 on D2
    with connect_admin(civic.settings) as admin:
        for meter in meters:
            for day, hour, index in readings:
                admin.execute(
                    "INSERT INTO tenant_civic.measurements (time, dev_eui, metric, value, unit,"
                    " deduplication_id) VALUES (%s, %s, 'water.index', %s, 'L', %s)",
                    (paris(day, hour), meter, index, uuid.uuid4()))
        values = opendata.device_days(admin, "tenant_civic", "water", meters, D1, D2)
    by_day: dict[dt.date, set[float]] = {}
    for v in values:
        by_day.setdefault(v.day, set()).add(v.value)
    # D1's first reading has no earlier one within the window: it starts the count.
    assert by_day == {D1: {300.0}, D2: {80.0}}

    areas = dict.fromkeys(meters[:5], "Centre") | {meters[5]: "Port"}
    rows = opendata.aggregate(values, areas, k=5)
    assert [(r.day, r.area, r.value, r.devices) for r in rows] == [
        (D1, "Centre", 1500.0, 5), (D1, "Port", None, None),
        (D2, "Centre", 400.0, 5), (D2, "Port", None, None)]


@pytest.mark.services
def test_the_opendata_command_suppresses_a_member_with_too_few_meters(civic: Civic) -> None:
    with connect_admin(civic.settings) as admin:
        admin.execute(
            "INSERT INTO tenant_civic.measurements (time, dev_eui, metric, value, unit,"
            " deduplication_id) VALUES (%s, %s, 'water.index', %s, 'L', %s),"
            " (%s, %s, 'water.index', %s, 'L', %s) ON CONFLICT DO NOTHING",
            (paris(D1, 8), "c1c1c1c1c1c10001", 10.0, uuid.uuid4(),
             paris(D1, 9), "c1c1c1c1c1c10001", 25.0, uuid.uuid4()))
    app = typer.Typer()
    opendata_commands.register(app)
    result = CliRunner().invoke(app, ["opendata", "water", "civic", "--from", "2025-03-10",
                                      "--to", "2025-03-10"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    # One meter declared: its member-wide group is below k, nothing of it is published.
    assert rows == [{"day": "2025-03-10", "area": "Ville de Civique (test)", "value": "",
                     "devices": "", "suppressed": "true"}]
    assert "15" not in result.output

