"""Measurements: raw readings or time buckets, over a time range, for some devices and
metrics. Operators without a grant see every device except personal data classes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from psycopg import sql

from hypervision import accounts
from hypervision.api import schemas
from hypervision.api.deps import Audit, MemberScope, ReadMember, ReadSession, State, forbidden
from hypervision.api.params import (
    DEV_EUI,
    METRIC,
    DeviceList,
    End,
    MetricList,
    Start,
    finite,
    split_list,
    time_range,
)

router = APIRouter(tags=["data"])

# Bucket widths offered; the SQL interval comes from this table, never from the request.
BUCKETS = {"1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour",
           "6h": "6 hours", "1d": "1 day", "7d": "7 days"}
AGGREGATES = {
    "avg": sql.SQL("avg(value)"), "min": sql.SQL("min(value)"), "max": sql.SQL("max(value)"),
    "sum": sql.SQL("sum(value)"), "first": sql.SQL("first(value, time)"),
    "last": sql.SQL("last(value, time)"),
}
MAX_ROWS = 10_000


def personal_devices(state: State, slug: str) -> list[str]:
    """The member's devices whose data class is personal data."""
    with state.dbs.control() as conn:
        rows = conn.execute(
            "SELECT dev_eui FROM hv.devices WHERE member_slug = %s"
            " AND spec ->> 'data_class' = ANY(%s)",
            (slug, sorted(accounts.PERSONAL_DATA_CLASSES)),
        ).fetchall()
    return [r[0] for r in rows]


def withheld(state: State, member: MemberScope, devices: list[str]) -> list[str]:
    """Devices to leave out: none when the caller may read personal data; otherwise the
    personal ones, and asking for one by name is refused."""
    if member.personal_data:
        return []
    personal = personal_devices(state, member.slug)
    asked = sorted(set(devices) & set(personal))
    if asked:
        raise forbidden(f"{', '.join(asked)} carry personal data: reading them needs an"
                        " operator grant from the member")
    return personal


@router.get("/members/{slug}/measurements", response_model=schemas.Measurements,
            responses={400: {"model": schemas.Problem}, 404: {"model": schemas.Problem}})
def read_measurements(
    member: ReadMember, session: ReadSession, state: State, audit_: Audit,
    start: Start = None, end: End = None,
    devices: DeviceList = [],  # noqa: B006 (FastAPI copies defaults)
    metrics: MetricList = [],  # noqa: B006
    bucket: Annotated[Literal["1m", "5m", "15m", "1h", "6h", "1d", "7d"] | None,
                      Query(description="Aggregate per time bucket of this width.")] = None,
    agg: Annotated[Literal["avg", "min", "max", "sum", "first", "last"],
                   Query(description="Aggregate used with `bucket`.")] = "avg",
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
) -> schemas.Measurements:
    """Readings in [start, end) (default: the last 24 hours), oldest first."""
    start, end = time_range(start, end)
    device_ids = split_list(devices, DEV_EUI, "device")
    metric_names = split_list(metrics, METRIC, "metric")
    left_out = withheld(state, member, device_ids)
    table = sql.Identifier(member.schema, "measurements")
    where = sql.SQL(
        "time >= %(start)s AND time < %(end)s"
        " AND (cardinality(%(devices)s::text[]) = 0 OR dev_eui = ANY(%(devices)s))"
        " AND (cardinality(%(metrics)s::text[]) = 0 OR metric = ANY(%(metrics)s))"
        " AND NOT (dev_eui = ANY(%(withheld)s))"
    )
    if bucket is None:
        query = sql.SQL(
            "SELECT time, dev_eui, metric, value, unit, 1 FROM {table} WHERE {where}"
            " ORDER BY time, dev_eui, metric LIMIT %(limit)s"
        ).format(table=table, where=where)
    else:
        query = sql.SQL(
            "SELECT time_bucket(%(width)s::interval, time) AS bucket, dev_eui, metric, {agg},"
            " min(unit), count(*) FROM {table} WHERE {where}"
            " GROUP BY bucket, dev_eui, metric ORDER BY bucket, dev_eui, metric LIMIT %(limit)s"
        ).format(agg=AGGREGATES[agg], table=table, where=where)
    rows = session.execute(query, {
        "start": start, "end": end, "devices": device_ids, "metrics": metric_names,
        "withheld": left_out, "limit": limit + 1, "width": BUCKETS.get(bucket or ""),
    }).fetchall()
    truncated = len(rows) > limit
    rows = rows[:limit]
    audit_.record("measurements.read", member.slug, target=",".join(device_ids) or "*",
                  params={"start": start, "end": end, "devices": device_ids,
                          "metrics": metric_names, "bucket": bucket,
                          "agg": agg if bucket else None, "limit": limit,
                          "grant": member.grant_id, "withheld_devices": len(left_out)},
                  rows=len(rows))
    return schemas.Measurements(
        member=member.slug, start=start, end=end, bucket=bucket, agg=agg if bucket else None,
        rows=[schemas.Measurement(time=r[0], dev_eui=r[1], metric=r[2], value=finite(r[3]),
                                  unit=r[4], count=r[5]) for r in rows],
        truncated=truncated, withheld_devices=len(left_out),
    )
