"""Helpers of the analytics and alert tests: readings written straight into the test
member's tables (as the superuser), UTC times, one refresh."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
import yaml

from hypervision.analytics import members, rollups
from hypervision.settings import Settings
from ingest.decode.metrics import METRICS

SLUG = "analytica"
SCHEMA = "tenant_analytica"
TENANTS = Path(__file__).parent / "tenants"


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


def put(
    admin: psycopg.Connection, dev_eui: str, metric: str,
    readings: Iterable[tuple[dt.datetime, float]],
) -> None:
    """Insert readings as the pipeline would (one uplink id each)."""
    rows = [(t, dev_eui, metric, float(v), METRICS[metric].unit, uuid.uuid4())
            for t, v in readings]
    with admin.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {SCHEMA}.measurements (time, dev_eui, metric, value, unit,"
            " deduplication_id) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def hourly(start: dt.datetime, values: Iterable[float],
           step: dt.timedelta = dt.timedelta(hours=1)) -> list[tuple[dt.datetime, float]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


def refresh(admin: psycopg.Connection, settings: Settings) -> rollups.RefreshResult:
    result = rollups.refresh(admin, members.member(admin, SLUG), settings)
    assert result.skipped is None
    return result


def write_analytics(folder: Path, body: dict[str, Any]) -> None:
    """The member's analytics file (calendars, thresholds, alert rules)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"version": "v1", "kind": "analytics", "name": SLUG, **body},
                          allow_unicode=True, sort_keys=False)
    (folder / f"{SLUG}.yaml").write_text(text, encoding="utf-8")
