"""What several pages share: the member's facts from the catalogue, local times, and the
devices an operator without a grant may not see."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from hypervision.api.deps import AppState, MemberScope
from hypervision.api.routes.measurements import withheld

TZ = ZoneInfo("Europe/Paris")
PAGE_SIZE = 100


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def member_facts(state: AppState, scope: MemberScope) -> dict[str, Any]:
    """The member as the page header shows it."""
    with state.dbs.control() as conn:
        row = conn.execute(
            "SELECT name, kind, spec -> 'contacts' -> 'dpo', coalesce(spec -> 'retention', '{}'),"
            " coalesce(spec -> 'export_recipients', '[]') FROM hv.members WHERE slug = %s",
            (scope.slug,)).fetchone()
    assert row is not None
    return {"slug": scope.slug, "name": row[0], "kind": row[1], "dpo": row[2] or {},
            "retention": row[3], "recipients": row[4], "own": scope.own,
            "personal": scope.personal_data, "grant": scope.grant_id}


def hidden_devices(state: AppState, scope: MemberScope) -> set[str]:
    """Devices of personal data classes when the caller may not read personal data."""
    return set(withheld(state, scope, []))


def local(value: dt.datetime | None, with_seconds: bool = False) -> str:
    if value is None:
        return "—"
    return value.astimezone(TZ).strftime("%d/%m/%Y %H:%M" + (":%S" if with_seconds else ""))


def ago(value: dt.datetime | None, lang: str) -> str:
    """'il y a 3 h' / '3 h ago'."""
    if value is None:
        return "jamais" if lang == "fr" else "never"
    seconds = max(0, int((now() - value).total_seconds()))
    if seconds < 3600:
        text = f"{seconds // 60} min"
    elif seconds < 2 * 86400:
        text = f"{seconds // 3600} h"
    else:
        text = f"{seconds // 86400} j" if lang == "fr" else f"{seconds // 86400} d"
    return f"il y a {text}" if lang == "fr" else f"{text} ago"


def parse_day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def local_today() -> dt.date:
    """Today in the pages' time zone (TZ), whatever the server's own: from 23:00 UTC in
    winter it is already tomorrow in Paris."""
    return dt.datetime.now(TZ).date()


def day_start(day: dt.date) -> dt.datetime:
    """Midnight of a local day, as an aware time."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ)
