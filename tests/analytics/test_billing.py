"""The billing run: every water meter's index at the billing date, consumption over the
period and flags, as the CSV billing software imports, from the CLI (audited as an
export; the next run's period starts at this run's date). Expected figures are worked
out by hand in the comments; March 2026, Paris is UTC+1: the billing date 12 March is
2026-03-11 23:00 UTC, the period start 10 March is 2026-03-09 23:00 UTC."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hypervision.analytics import billing, members
from hypervision.cli import app
from hypervision.db import connect_as
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, SLUG, put, refresh, utc

pytestmark = pytest.mark.services

TOUR, SWAP, LEAKY, SOBER, BILLED, REGULAR = (
    "c6c6c6c6c6c60001", "c6c6c6c6c6c60002", "c6c6c6c6c6c60003", "c6c6c6c6c6c60004",
    "c6c6c6c6c6c60005", "c6c6c6c6c6c60014",
)
HEADER = ("meter_id;dev_eui;name;address;index_date;index_m3;estimated;gap_days;method;"
          "period_start;index_start_m3;consumption_m3;flags")


def half_hours(start: dt.datetime, values: list[float]) -> list[tuple[dt.datetime, float]]:
    return [(start + dt.timedelta(hours=i), v) for i, v in enumerate(values)]


def readings(admin: psycopg.Connection[Any]) -> None:
    # Billed meter (meter_id AB-0042): 10 L an hour, read at half past each hour from 9 March
    # 20:30 UTC (400 L). At 23:00 on the 11th, halfway between 22:30 (900 L) and 23:30
    # (910 L): 905 L. At 23:00 on the 9th: 425 L. Over the 48 hours between: 480 L.
    put(admin, BILLED, "water.index",
        half_hours(utc(2026, 3, 9, 20, 30), [400 + 10 * k for k in range(55)]))
    # Rollover at 100,000 L (index_rollover_l): 99,990 at 22:30, 30 at 23:30 is 40 L; at
    # 23:00, 99,990 + 20 = 100,010, i.e. 10 L. In the period: 21:30 -> 22:30 (10 L) and half
    # of 22:30 -> 23:30 (20 L): 30 L. No reading before the period: no start index.
    put(admin, TOUR, "water.index", half_hours(utc(2026, 3, 11, 21, 30), [99_980, 99_990, 30, 50]))
    # Meter swap between 22:30 (5,300 L) and 23:30 (20 L, a new meter): the old meter's last
    # reading, estimated. In the period: 300 L (21:30 -> 22:30) + half of the new meter's
    # 20 L = 310 L.
    put(admin, SWAP, "water.index", half_hours(utc(2026, 3, 11, 21, 30), [5_000, 5_300, 20, 50]))
    # Reverse flow 20:30 -> 21:30 (800 -> 760 L), then 10 L an hour: 775 L at 23:00. In the
    # period: -40 + 10 + 5 = -25 L.
    put(admin, LEAKY, "water.index", half_hours(utc(2026, 3, 11, 20, 30), [800, 760, 770, 780]))
    # Read on 8 March 12:00 (100 L) then 13 March 12:00 (220 L): five days, 1 L an hour spread
    # over the gap. At 23:00 on the 11th (83 hours on): 183 L, estimated (no reading within a
    # day); on the 9th (35 hours on): 135 L; 48 L between; no reading in the period.
    put(admin, REGULAR, "water.index", [(utc(2026, 3, 8, 12), 100), (utc(2026, 3, 13, 12), 220)])
    # The sober meter never sent anything.


EXPECTED = [
    HEADER,
    f"AB-0042;{BILLED};Compteur facturé;;2026-03-12T00:00;0.905;0;0.0;interpolated;"
    "2026-03-10T00:00;0.425;0.480;",
    f"Compteur fuyard;{LEAKY};Compteur fuyard;;2026-03-12T00:00;0.775;0;0.0;interpolated;"
    "2026-03-10T00:00;;-0.025;reverse-flow",
    f"Compteur remplacé;{SWAP};Compteur remplacé;;2026-03-12T00:00;5.300;1;0.0;"
    "replaced-between;2026-03-10T00:00;;0.310;meter-swap",
    f"Compteur régulier;{REGULAR};Compteur régulier;;2026-03-12T00:00;0.183;1;5.0;"
    "interpolated;2026-03-10T00:00;0.135;0.048;gap,no-data",
    f"Compteur sobre;{SOBER};Compteur sobre;;2026-03-12T00:00;;0;;no-reading;"
    "2026-03-10T00:00;;;no-data",
    f"Compteur tour;{TOUR};Compteur tour;;2026-03-12T00:00;0.010;0;0.0;interpolated;"
    "2026-03-10T00:00;;0.030;rollover",
]


def test_the_billing_run_as_the_reader_role_matches_the_hand_computed_figures(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    readings(admin)
    refresh(admin, asettings)
    with connect_as(asettings, "analytica_reader") as reader:
        config = members.settings_of(reader, SCHEMA)
        lines = billing.run(reader, SCHEMA, config, utc(2026, 3, 11, 23), utc(2026, 3, 9, 23))
        text = "".join(billing.csv_chunks(lines, config.timezone, every=2))
    assert text.split("\r\n") == [*EXPECTED, ""]
    # The consumption over the period is the difference of the two indexes when the meter
    # was read on both sides of each (480 L = 905 - 425; 48 L = 183 - 135).
    with connect_as(asettings, "analytica_reader") as reader:
        comma = "".join(billing.csv_chunks(
            billing.run(reader, SCHEMA, config, utc(2026, 3, 11, 23), utc(2026, 3, 9, 23),
                        dev_euis=[BILLED]), config.timezone, decimal_comma=True))
    assert comma.split("\r\n")[1] == (f"AB-0042;{BILLED};Compteur facturé;;2026-03-12T00:00;"
                                      "0,905;0;0,0;interpolated;2026-03-10T00:00;0,425;0,480;")


def test_the_cli_writes_the_csv_audits_it_and_starts_the_next_period_there(
    member_db: psycopg.Connection[Any], asettings: Settings, tmp_path: Path
) -> None:
    admin = member_db
    readings(admin)
    refresh(admin, asettings)
    first = tmp_path / "march-12.csv"
    result = CliRunner().invoke(app, ["billing", SLUG, "--date", "2026-03-12", "--from",
                                      "2026-03-10", "-o", str(first)])
    assert result.exit_code == 0, result.output
    assert "6 meters billed at 2026-03-12" in result.output
    assert first.read_bytes().decode("utf-8").split("\r\n") == [*EXPECTED, ""]
    audited = admin.execute(
        "SELECT action, target, params ->> 'date', params ->> 'completed', rows"
        " FROM hv.audit_log WHERE member_slug = %s ORDER BY id DESC LIMIT 1", (SLUG,)).fetchone()
    assert audited == ("export.csv", "billing", "2026-03-12", "true", 6)

    # The next run, without --from, bills from the previous run's date. The billed meter's
    # last reading is 940 L at 02:30 UTC on the 12th: its index on the 14th (13 March
    # 23:00 UTC, 44.5 hours later: 1.9 days) is that reading, estimated; 905 L at the
    # start; 35 L between.
    second = tmp_path / "march-14.csv"
    result = CliRunner().invoke(app, ["billing", SLUG, "--date", "2026-03-14", "-o",
                                      str(second)])
    assert result.exit_code == 0, result.output
    line = second.read_bytes().decode("utf-8").split("\r\n")[1].split(";")
    assert line[:1] + line[5:] == ["AB-0042", "0.940", "1", "1.9", "last-reading",
                                   "2026-03-12T00:00", "0.905", "0.035", ""]

    refused = CliRunner().invoke(app, ["billing", SLUG, "--date", "2026-03-12", "--from",
                                       "2026-03-12"])
    assert refused.exit_code == 1 and "must start before the billing date" in refused.output
    unknown = CliRunner().invoke(app, ["billing", "nobody", "--date", "2026-03-12"])
    assert unknown.exit_code == 1 and "no member 'nobody'" in unknown.output
