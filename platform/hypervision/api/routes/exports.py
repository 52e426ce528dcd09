"""Streamed exports of a member's measurements or raw uplinks (CSV, Parquet, JSON Lines),
built on hypervision.export. The rows never sit in memory: the response streams the
export library's chunks, and the audit entry, with the row count, is written when the
stream ends (or is abandoned by the client).

Incremental exports: the response header `X-Next-Cursor` is the cursor to pass next
time to receive only what was stored since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse

from hypervision.analytics import billing
from hypervision.analytics.members import settings_of
from hypervision.api import schemas
from hypervision.api.deps import Audit, ExportMember, State, forbidden
from hypervision.api.params import (
    DEV_EUI,
    METRIC,
    DeviceList,
    End,
    MetricList,
    Start,
    bad_request,
    bounded,
    split_list,
)
from hypervision.api.routes.measurements import personal_devices
from hypervision.export import ExportError, ExportFilter, open_export
from hypervision.pseudonym import Pseudonymiser
from hypervision.tenancy.spec import Recipient

router = APIRouter(tags=["exports"])
Kind = Literal["measurements", "uplinks"]
Format = Literal["csv", "parquet", "jsonl"]


def _allowed_devices(state: State, member: ExportMember, kind: str,
                     asked: list[str]) -> list[str]:
    """The device filter to apply: what was asked, unless the caller is an operator
    without a grant, who may export only the member's non-personal measurements."""
    if member.personal_data:
        return asked
    if kind == "uplinks":
        raise forbidden("exporting raw uplinks of another member needs a grant")
    personal = set(personal_devices(state, member.slug))
    if set(asked) & personal:
        raise forbidden("some of these devices carry personal data: exporting them needs"
                        " a grant")
    if asked:
        return asked
    with state.dbs.control() as conn:
        allowed = [r[0] for r in conn.execute(
            "SELECT dev_eui FROM hv.devices WHERE member_slug = %s ORDER BY dev_eui",
            (member.slug,)).fetchall() if r[0] not in personal]
    if not allowed:
        raise forbidden("every device of this member carries personal data: exporting"
                        " needs a grant")
    return allowed


def _declared(state: State, slug: str, recipient: str | None, pseudonymise: bool,
              coarsen: str | None) -> tuple[dict[str, str], Pseudonymiser | None]:
    """The devices' declared names, and the pseudonymiser the request calls for: the
    named recipient's (None for a recipient that is not a third party), or the default
    third-party one when asked to pseudonymise or coarsen."""
    with state.dbs.control() as conn:
        devices = conn.execute(
            "SELECT dev_eui, name, coalesce(spec ->> 'data_class', 'technical')"
            " FROM hv.devices WHERE member_slug = %s", (slug,)).fetchall()
        declared = conn.execute(
            "SELECT spec -> 'export_recipients' FROM hv.members WHERE slug = %s",
            (slug,)).fetchone()
    names = {r[0]: r[1] for r in devices}
    spec = SimpleNamespace(name=slug, devices=[
        SimpleNamespace(dev_eui=r[0], data_class=r[2]) for r in devices])
    pseudonymiser = None
    if recipient is not None:
        found = [r for r in (declared[0] if declared and declared[0] else [])
                 if r.get("name") == recipient]
        if not found:
            raise bad_request(f"no export recipient named {recipient!r} in this member's file")
        pseudonymiser = Pseudonymiser.for_recipient(
            state.settings, spec, Recipient.model_validate(found[0]),
            coarsen=coarsen)
    if pseudonymiser is None and (pseudonymise or coarsen):
        pseudonymiser = Pseudonymiser.for_recipient(
            state.settings, spec, Recipient(name="third party", third_party=True),
            coarsen=coarsen)
    return names, pseudonymiser


@router.get(
    "/members/{slug}/exports/{kind}.{fmt}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/jsonl": {},
                          "application/vnd.apache.parquet": {}},
              "description": "The export, streamed; header X-Next-Cursor for the next one."},
        400: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
        404: {"model": schemas.Problem},
    },
)
def export(
    member: ExportMember, state: State, audit_: Audit,
    kind: Annotated[Kind, Path(description="What to export.")],
    fmt: Annotated[Format, Path(description="File format.")],
    start: Start = None, end: End = None,
    devices: DeviceList = [],  # noqa: B006 (FastAPI copies defaults)
    metrics: MetricList = [],  # noqa: B006
    cursor: Annotated[str | None, Query(
        max_length=4096, description="The X-Next-Cursor of a previous export.")] = None,
    recipient: Annotated[str | None, Query(
        max_length=200, description="A recipient declared in the member's file: a third"
        " party gets a pseudonymised export.")] = None,
    pseudonymise: Annotated[bool, Query(
        description="Pseudonymise identifiers and drop personal fields.")] = False,
    coarsen: Annotated[Literal["hour", "day"] | None, Query(
        description="Truncate times (pseudonymised exports).")] = None,
) -> StreamingResponse:
    """Everything matching the filters (no time bound unless given), or with `cursor`
    only what was stored since the export that returned it."""
    start, end = (None if t is None else bounded(t, name)
                  for t, name in ((start, "start"), (end, "end")))
    if start is not None and end is not None and start >= end:
        raise bad_request("start must be before end")
    device_ids = _allowed_devices(state, member, kind, split_list(devices, DEV_EUI, "device"))
    metric_names = split_list(metrics, METRIC, "metric")
    if kind == "uplinks" and metric_names:
        raise bad_request("metrics filter measurements, not uplinks")
    names, pseudonymiser = _declared(state, member.slug, recipient, pseudonymise, coarsen)
    flt = ExportFilter(start=start, end=end, devices=tuple(device_ids),
                       metrics=tuple(metric_names), cursor=cursor or None)
    params = {"kind": kind, "format": fmt, "start": start, "end": end, "devices": device_ids,
              "metrics": metric_names, "cursor": cursor, "grant": member.grant_id,
              "recipient": recipient, "pseudonymised": pseudonymiser is not None,
              "coarsen": coarsen}

    resources = ExitStack()
    try:
        conn = resources.enter_context(state.dbs.reader(member.slug))
        stream = open_export(conn, member.schema, kind, fmt, flt, pseudonymiser, names=names)
    except ExportError as exc:
        resources.close()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except BaseException:
        resources.close()
        raise

    def body() -> Iterator[bytes]:
        completed = False
        try:
            yield from stream.chunks
            completed = True
        finally:
            rows = stream.rows() if completed else None
            stream.close()
            resources.close()
            audit_.record(f"export.{fmt}", member.slug, target=kind,
                          params={**params, "completed": completed,
                                  "next_cursor": stream.next_cursor}, rows=rows)

    headers = {
        "X-Next-Cursor": stream.next_cursor,
        "Content-Disposition": f'attachment; filename="{member.slug}-{kind}.{fmt}"',
    }
    return StreamingResponse(body(), media_type=stream.media_type, headers=headers)


@router.get(
    "/members/{slug}/billing.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}},
              "description": "One line per water meter, `;`-separated (columns in"
                             " platform/README.md, \"Billing run\")."},
        400: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
        404: {"model": schemas.Problem},
    },
)
def billing_export(
    member: ExportMember, state: State, audit_: Audit,
    date: Annotated[dt.date, Query(
        description="Billing date: the indexes at 00:00 that day, the member's local time.")],
    start: Annotated[dt.date | None, Query(
        alias="from", description="Period start (a date); default: the date of the previous"
        " completed billing export, else each meter's first reading.")] = None,
    decimal: Annotated[Literal["point", "comma"], Query(
        description="Decimal separator of the numbers.")] = "point",
) -> StreamingResponse:
    """The billing run of the member's water meters: index at the date (interpolated
    between the readings around it; `estimated` with the gap when no reading lies within a
    day), consumption over the period, and the flags a billing clerk checks (rollover,
    meter-swap, reverse-flow, gap, no-data). Streamed; audited as an export
    (`export.csv`, target `billing`). Water consumption is personal data: an operator
    needs a grant."""
    if not member.personal_data:
        raise forbidden("billing reads water consumption, which is personal data: it needs"
                        " a grant")
    for value, name in ((date, "date"), (start, "from")):
        if value is not None:
            bounded(dt.datetime.combine(value, dt.time(12), dt.UTC), name)
    with state.dbs.control() as control:
        first = start if start is not None else billing.previous_billing(
            control, member.slug, date)
    params = {"date": date.isoformat(), "from": None if first is None else first.isoformat(),
              "decimal": decimal, "grant": member.grant_id}
    resources = ExitStack()
    try:
        conn = resources.enter_context(state.dbs.reader(member.slug))
        config = settings_of(conn, member.schema)
        at = billing.billing_instant(date, config.timezone)
        period = None if first is None else billing.billing_instant(first, config.timezone)
        if period is not None and period >= at:
            raise bad_request("the period must start before the billing date")
        lines = billing.run(conn, member.schema, config, at, period)
    except BaseException:
        resources.close()
        raise
    meters = 0

    def counted() -> Iterator[billing.Line]:
        nonlocal meters
        for line in lines:
            meters += 1
            yield line

    def body() -> Iterator[bytes]:
        completed = False
        try:
            for chunk in billing.csv_chunks(counted(), config.timezone, decimal == "comma"):
                yield chunk.encode("utf-8")
            completed = True
        finally:
            resources.close()
            audit_.record(billing.EXPORT_ACTION, member.slug, target=billing.EXPORT_TARGET,
                          params={**params, "completed": completed},
                          rows=meters if completed else None)

    headers = {"Content-Disposition":
               f'attachment; filename="billing-{member.slug}-{date.isoformat()}.csv"'}
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=headers)
