"""Waste containers: a collection, the fill rate and days until full, today's list (above
the threshold, or full before the next round), a level computed from the distance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from hypervision.analytics import waste
from hypervision.analytics.config import WasteSettings
from hypervision.commands import analytics
from hypervision.settings import Settings
from tests.analytics.helpers import SCHEMA, SLUG, put, refresh, utc

pytestmark = pytest.mark.services

GLASS, PAPER, PLASTIC = "c6c6c6c6c6c60006", "c6c6c6c6c6c60007", "c6c6c6c6c6c60013"


def _fill(admin: psycopg.Connection[Any]) -> None:
    # Glass: emptied on Tuesday 10 March at 15:00 UTC (90 % -> 5 %: a fall of 85 points,
    # at least 30), then 10 points a day: 5, 15, 25, 35 % at 15:00 on the 10th to the 13th.
    put(admin, GLASS, "fill.level", [
        (utc(2026, 3, 10, 8), 85), (utc(2026, 3, 10, 14), 90), (utc(2026, 3, 10, 15), 5),
        (utc(2026, 3, 11, 15), 15), (utc(2026, 3, 12, 15), 25), (utc(2026, 3, 13, 15), 35)])
    # Paper reports only its distance; depth 1500 mm: 750 mm is 50 %, 450 mm is 70 %.
    put(admin, PAPER, "fill.distance", [(utc(2026, 3, 12, 15), 750), (utc(2026, 3, 13, 15), 450)])
    # Plastic: 85 %, above the 80 % threshold.
    put(admin, PLASTIC, "fill.level", [(utc(2026, 3, 13, 10), 85)])


def test_a_collection_and_a_days_until_full_forecast(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    refresh(admin, asettings)
    _fill(admin)
    refresh(admin, asettings)

    found = waste.collections_between(admin, SCHEMA, utc(2026, 3, 1), utc(2026, 4, 1))
    assert [(c.time, c.dev_eui, c.level_before, c.level_after) for c in found] == [
        (utc(2026, 3, 10, 15), GLASS, 90.0, 5.0)]
    assert admin.execute(f"SELECT dev_eui, level_before_pct FROM {SCHEMA}.dash_waste_collections"
                         ).fetchall() == [(GLASS, 90.0)]

    # Friday 13 March, 17:00 in Paris. The next round (Monday to Friday) is Monday the 16th,
    # 00:00 in Paris = 15 March 23:00 UTC.
    now = utc(2026, 3, 13, 16)
    state = {c.dev_eui: c for c in waste.containers(admin, SCHEMA, WasteSettings(), now)}
    glass = state[GLASS]
    # Since the collection: 5, 15, 25, 35 % one day apart: 10 points a day; from 35 %,
    # (100 - 35) / 10 = 6.5 days: full on the 20th at 03:00 UTC, after Monday's round.
    assert (round(glass.rate_pct_per_day, 9), round(glass.days_until_full, 9)) == (10.0, 6.5)
    assert glass.full_at == utc(2026, 3, 20, 3)
    assert glass.last_collection == utc(2026, 3, 10, 15)
    assert (glass.to_empty, glass.next_round) == (False, dt.date(2026, 3, 16))
    # Paper: 50 -> 70 % in a day, 20 points a day, (100 - 70) / 20 = 1.5 days: full on the
    # 15th at 03:00 UTC, before Monday's round.
    paper = state[PAPER]
    assert (paper.level_pct, round(paper.days_until_full, 9)) == (70.0, 1.5)
    assert (paper.to_empty, paper.reason) == (True, "forecast")

    chosen = waste.today(admin, SCHEMA, WasteSettings(), now)
    assert [(c.dev_eui, c.reason) for c in chosen] == [(PLASTIC, "level"), (PAPER, "forecast")]

    # The view, as of now (months later: no recent rate), keeps the threshold rule; paper
    # is there too, its level computed from its distance.
    view = dict(admin.execute(f"SELECT dispositif, a_vider FROM {SCHEMA}.v_dechets_conteneurs"
                              ).fetchall())
    assert view == {GLASS: False, PAPER: False, PLASTIC: True}

    # With a round every day, Saturday's round comes first: paper can wait.
    daily = WasteSettings(round_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    assert [c.dev_eui for c in waste.today(admin, SCHEMA, daily, now)] == [PLASTIC]


def test_the_cli_lists_the_containers_to_empty_today(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    admin = member_db
    _fill(admin)
    refresh(admin, asettings)
    app = typer.Typer()
    analytics.register(app)
    result = CliRunner().invoke(app, ["waste", "today", SLUG, "--at", "2026-03-13T17:00"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "Conteneur" in line]
    assert len(lines) == 2
    assert "plastique" in lines[0] and "above threshold" in lines[0]
    assert "papier" in lines[1] and "full before next round" in lines[1]


def test_the_fill_level_comes_from_the_distance_and_the_depth() -> None:
    assert waste.level_from_distance(450, 1500) == 70.0
    assert waste.level_from_distance(1600, 1500) == 0.0
    assert waste.level_from_distance(-10, 1500) == 100.0
    assert waste.fill_rate([(utc(2026, 1, 1), 10.0)]) is None


def test_a_container_whose_level_stays_flat_gets_no_forecast_of_years(
    member_db: psycopg.Connection[Any], asettings: Settings
) -> None:
    """A full container whose sensor reads 98 % for days: a rate of a few thousandths of a
    point a day made it "full in 1,500 days" beside its 98 %. No forecast, still to empty."""
    admin = member_db
    refresh(admin, asettings)
    now = admin.execute("SELECT now()").fetchone()[0]
    put(admin, GLASS, "fill.level", [(now - dt.timedelta(days=3 - i), 98 + 0.01 * i)
                                     for i in range(4)])
    refresh(admin, asettings)
    state = {c.dev_eui: c for c in waste.containers(admin, SCHEMA, WasteSettings(), now)}
    assert (state[GLASS].days_until_full, state[GLASS].full_at) == (None, None)
    assert state[GLASS].to_empty
    row = admin.execute(
        f"SELECT jours_avant_plein, plein_le, a_vider FROM {SCHEMA}.v_dechets_conteneurs"
        " WHERE dispositif = %s", (GLASS,)).fetchone()
    assert row == (None, None, True)
    plan = admin.execute(f"SELECT days_to_full, full_at FROM {SCHEMA}.dash_waste_plan"
                         " WHERE dev_eui = %s", (GLASS,)).fetchone()
    assert plan == (None, None)
