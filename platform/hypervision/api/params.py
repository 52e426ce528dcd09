"""Query parameters shared by several endpoints: time ranges, device and metric lists,
opaque page cursors. Bad values become 400/422 with a message, never a server error."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import HTTPException, Query, status

DEV_EUI = re.compile(r"^[0-9a-f]{16}$")
METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_LIST = 200
# PostgreSQL's timestamptz reaches far beyond this; the bound keeps arithmetic safe.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

Start = Annotated[datetime | None,
                  Query(description="Inclusive start (ISO 8601; UTC if no offset).")]
End = Annotated[datetime | None,
                Query(description="Exclusive end (ISO 8601; UTC if no offset).")]
DeviceList = Annotated[list[str], Query(
    description="DevEUIs (16 hex digits), repeated or comma-separated.", max_length=MAX_LIST)]
MetricList = Annotated[list[str], Query(
    description="Metric names, repeated or comma-separated.", max_length=MAX_LIST)]
Cursor = Annotated[str | None, Query(max_length=512, description="From the previous page.")]


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def bounded(value: datetime, name: str) -> datetime:
    """A time with a zone (UTC when none was given), within the supported years."""
    value = _aware(value)
    if not EARLIEST <= value <= LATEST:
        raise bad_request(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


def time_range(start: datetime | None, end: datetime | None,
               default: timedelta = timedelta(days=1)) -> tuple[datetime, datetime]:
    """Resolve a [start, end) range: end defaults to now, start to end - default."""
    end = bounded(end, "end") if end is not None else datetime.now(UTC)
    start = bounded(start, "start") if start is not None else end - default
    if start >= end:
        raise bad_request("start must be before end")
    return start, end


def split_list(values: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    """Accept `?x=a&x=b` and `?x=a,b`; every item must match `pattern`."""
    items: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if not pattern.match(item):
                raise bad_request(f"{what} {item[:40]!r} is not valid")
            if item not in items:
                items.append(item)
    if len(items) > MAX_LIST:
        raise bad_request(f"at most {MAX_LIST} {what}s")
    return items


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such a value (an aggregate that overflowed, say) is
    given as null rather than failing the whole response."""
    return value if value is None or math.isfinite(value) else None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The values of a cursor made by `encode_cursor`, checked against `types`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                parsed = _aware(datetime.fromisoformat(value))
                if not EARLIEST <= parsed <= LATEST:
                    raise ValueError("out of range")
                out.append(parsed)
            elif kind is int:
                if not isinstance(value, int) or not 0 <= value < 2**63:
                    raise ValueError("not an id")
                out.append(value)
            else:
                out.append(kind(value))
        return out
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise bad_request("cursor is not valid; use the next_cursor of a previous page") from exc
