"""Raw uplinks as received, page by page. Personal data: operators need a grant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from psycopg import sql

from hypervision.api import schemas
from hypervision.api.deps import Audit, PersonalReadMember, PersonalSession
from hypervision.api.params import (
    DEV_EUI,
    Cursor,
    DeviceList,
    End,
    Start,
    decode_cursor,
    encode_cursor,
    split_list,
    time_range,
)

router = APIRouter(tags=["data"])
MAX_PAGE = 1000


@router.get("/members/{slug}/uplinks", response_model=schemas.Uplinks,
            responses={400: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
                       404: {"model": schemas.Problem}})
def read_uplinks(
    member: PersonalReadMember, session: PersonalSession, audit_: Audit,
    start: Start = None, end: End = None,
    devices: DeviceList = [],  # noqa: B006 (FastAPI copies defaults)
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Cursor = None,
    include_event: Annotated[bool, Query(description="Add ChirpStack's full event.")] = False,
) -> schemas.Uplinks:
    """Uplinks in [start, end) (default: the last 24 hours), oldest first; follow
    `next_cursor` for the next page."""
    start, end = time_range(start, end)
    device_ids = split_list(devices, DEV_EUI, "device")
    after_time: datetime | None = None
    after_id: uuid.UUID | None = None
    if cursor:
        after_time, after_id = decode_cursor(cursor, (datetime, uuid.UUID))
    query = sql.SQL(
        "SELECT time, received_at, dev_eui, deduplication_id, f_cnt, f_port, dr, rssi, snr,"
        " gateway_count, data, object, codec, decode_error, {event} FROM {table}"
        " WHERE time >= %(start)s AND time < %(end)s"
        " AND (cardinality(%(devices)s::text[]) = 0 OR dev_eui = ANY(%(devices)s))"
        " AND (%(after_time)s::timestamptz IS NULL"
        "      OR (time, deduplication_id) > (%(after_time)s, %(after_id)s::uuid))"
        " ORDER BY time, deduplication_id LIMIT %(limit)s"
    ).format(event=sql.SQL("event" if include_event else "NULL::jsonb"),
             table=sql.Identifier(member.schema, "uplinks"))
    rows = session.execute(query, {
        "start": start, "end": end, "devices": device_ids, "after_time": after_time,
        "after_id": after_id, "limit": limit + 1,
    }).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][0].isoformat(), str(rows[-1][3])) if more else None
    audit_.record("uplinks.read", member.slug, target=",".join(device_ids) or "*",
                  params={"start": start, "end": end, "devices": device_ids, "limit": limit,
                          "cursor": cursor, "grant": member.grant_id}, rows=len(rows))
    return schemas.Uplinks(member=member.slug, next_cursor=next_cursor, items=[
        schemas.Uplink(time=r[0], received_at=r[1], dev_eui=r[2], deduplication_id=str(r[3]),
                       f_cnt=r[4], f_port=r[5], dr=r[6], rssi=r[7], snr=r[8],
                       gateway_count=r[9], data_hex=bytes(r[10]).hex(), object=r[11],
                       codec=r[12], decode_error=r[13], event=r[14])
        for r in rows
    ])
