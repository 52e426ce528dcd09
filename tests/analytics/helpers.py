"""Helpers of the analytics and alert tests: the test member's settings declared in its
tenant file, readings written straight into its tables (as the superuser), UTC times, one
refresh."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import yaml

from hypervision.analytics import members, rollups
from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec, load_file
from ingest.decode import Catalogue
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


@cache
def _catalogue() -> Catalogue:
    return Catalogue.load()


def declare(
    admin: psycopg.Connection, settings: Settings, body: dict[str, Any]
) -> list[tenancy.Step]:
    """Apply the test member's tenant file with `body` (its `analytics:` and `alerts:`
    sections, say) in place of the file's own, as `hypervision tenants apply` would:
    validated by TenantSpec, stored in hv.members.spec, audited. The jobs read it from
    there at their next run."""
    raw = yaml.safe_load((TENANTS / f"{SLUG}.yaml").read_text(encoding="utf-8"))
    spec = TenantSpec.model_validate({**raw, **body})
    return tenancy.apply(admin, [spec], _catalogue(), settings, log=lambda _: None)


def restore(admin: psycopg.Connection, settings: Settings) -> None:
    """Put the test member's declaration back as in its file, if a test changed it."""
    spec = load_file(TENANTS / f"{SLUG}.yaml")
    row = admin.execute("SELECT spec FROM hv.members WHERE slug = %s", (SLUG,)).fetchone()
    stored = row[0] if row else {}
    wanted = spec.model_dump(mode="json", include={"analytics", "alerts"})
    if any(stored.get(key) != value for key, value in wanted.items()):
        tenancy.apply(admin, [spec], _catalogue(), settings, log=lambda _: None)
