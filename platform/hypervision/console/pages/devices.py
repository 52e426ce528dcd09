"""Devices: the list with its search, filters and map, and a device's own page (last
readings, a chart of one metric over a period, radio quality per gateway, decode errors,
its public page and QR code, its downlinks and, for admins, commands).

Reads go through the member's reader connection and are audited like the API's
`devices.read` and `measurements.read`; an operator without a grant does not see the
devices of personal data classes (the API's `withheld`), nor their locations.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from psycopg import sql
from psycopg.rows import dict_row

from hypervision.analytics import health
from hypervision.analytics.members import settings_of
from hypervision.api.deps import Audit, MemberScope, State, forbidden
from hypervision.api.params import DEV_EUI
from hypervision.api.routes.measurements import withheld
from hypervision.chirpstack import downlinks
from hypervision.console import PREFIX, svg
from hypervision.console.forms import PostedForm
from hypervision.console.pages.common import PAGE_SIZE, TZ, hidden_devices, member_facts, now
from hypervision.console.session import AdminPage, ReadConn, ReadPage
from hypervision.console.web import lang_of, render
from hypervision.public.texts import metric_label as sentence_label

router = APIRouter()
DevEuiPath = Annotated[str, Path(pattern=DEV_EUI.pattern)]
STATES = ("ok", "silent", "battery")
# Periods a chart may show, and the bucket that keeps it to a few hundred points.
PERIODS = {"24h": (dt.timedelta(hours=24), None), "7d": (dt.timedelta(days=7), "1 hour"),
           "30d": (dt.timedelta(days=30), "6 hours"), "90d": (dt.timedelta(days=90), "1 day")}


# The list in one statement on the member's reader connection: the catalogue as the
# member's own roles read it (hv_shared.member_device_list, live, read once: the active
# devices with the columns listed, none parsed from their declaration), each device's
# state as analytics.health.device_states defines it (silent after silent_factor usual
# intervals without an uplink, then low battery; tests/console/test_pages.py checks that
# both agree), the filters, the order and the page; besides the page, only how many
# match, the filters' choices and, when the map draws every device (at most `dots`),
# each matching device's state leave the database. A larger set's map is an image of
# its own (`device_map_image`), fetched by the browser beside the page.
LIST_SQL = """
WITH everything AS MATERIALIZED (
    SELECT d.dev_eui, d.name, d.model_id, d.data_class, d.building
    FROM hv_shared.member_device_list(%(m)s) d
    WHERE NOT (d.dev_eui = ANY(%(hidden)s::text[]))
), stated AS (
    SELECT c.*, s.last_seen, s.battery_level::float8 AS battery,
           CASE WHEN s.last_seen IS NULL OR s.last_seen < %(now)s - make_interval(
                         secs => %(factor)s * coalesce(a.typical_interval_s, %(default)s))
                THEN 'silent'
                WHEN s.battery_level < %(low)s THEN 'battery'
                ELSE 'ok' END AS state
    FROM everything c
    LEFT JOIN {s}.device_state s USING (dev_eui)
    LEFT JOIN {s}.analytics_devices a USING (dev_eui)
    WHERE (%(q)s = '' OR c.name ILIKE %(like)s OR c.dev_eui LIKE lower(%(like)s))
      AND (%(model)s = '' OR c.model_id = %(model)s)
      AND (%(class)s = '' OR c.data_class = %(class)s)
      AND (%(building)s = '' OR c.building = %(building)s)
), matching AS MATERIALIZED (
    SELECT * FROM stated WHERE %(state)s = '' OR state = %(state)s
)
SELECT
    (SELECT coalesce(json_agg(p ORDER BY p.name, p.dev_eui), '[]') FROM (
        SELECT dev_eui, name, model_id, data_class, building, last_seen, battery, state
        FROM matching ORDER BY name, dev_eui LIMIT %(limit)s OFFSET %(offset)s) p),
    (SELECT count(*) FROM matching),
    -- Sub-queries in a CASE run only when it takes their branch.
    CASE WHEN (SELECT count(*) FROM matching) <= %(dots)s
         THEN (SELECT coalesce(array_agg(dev_eui ORDER BY dev_eui), '{{}}') FROM matching) END,
    CASE WHEN (SELECT count(*) FROM matching) <= %(dots)s
         THEN (SELECT coalesce(array_agg(state ORDER BY dev_eui), '{{}}') FROM matching) END,
    (SELECT coalesce(array_agg(DISTINCT model_id ORDER BY model_id), '{{}}') FROM everything),
    (SELECT coalesce(array_agg(DISTINCT data_class ORDER BY data_class), '{{}}')
     FROM everything),
    (SELECT coalesce(array_agg(DISTINCT building ORDER BY building)
                     FILTER (WHERE building IS NOT NULL), '{{}}') FROM everything)
"""


def _positions(state: State, slug: str) -> dict[str, tuple[str, float, float]]:
    """Declared positions of the member's active devices (the catalogue; member roles
    cannot read them)."""
    with state.dbs.control() as conn:
        rows = conn.execute(
            "SELECT dev_eui, name, (spec #>> '{location,lat}')::float8,"
            " (spec #>> '{location,lon}')::float8 FROM hv.devices"
            " WHERE member_slug = %s AND active AND spec #> '{location,lat}' IS NOT NULL"
            " AND spec #> '{location,lon}' IS NOT NULL", (slug,)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


Filters = tuple[str, str, str, str, str]  # q, model, class, building, state
QueryText = Annotated[str, Query(max_length=100)]


def _filters(
    q: QueryText = "",
    model: QueryText = "",
    data_class: Annotated[str, Query(alias="class", max_length=100)] = "",
    building: Annotated[str, Query(max_length=200)] = "",
    state_: Annotated[str, Query(alias="state", max_length=20)] = "",
) -> Filters:
    return q.strip(), model, data_class, building, state_


def _listed(session: Any, member: MemberScope, hidden: set[str], filters: Filters,
            dots: int, limit: int, offset: int) -> tuple[Any, ...]:
    """LIST_SQL's answer: the page, how many match, their devices and states (None when
    more than `dots` match) and the filters' choices."""
    q, model, data_class, building, state_ = filters
    config = settings_of(session, member.schema).health
    params = {"m": member.slug, "hidden": sorted(hidden), "q": q,
              "like": f"%{q.replace('%', '').replace('_', '')}%", "model": model,
              "class": data_class, "building": building,
              "state": state_ if state_ in STATES else "", "now": now(),
              "factor": config.silent_factor, "default": health.DEFAULT_INTERVAL_S,
              "low": config.battery_low_pct, "limit": limit, "offset": offset, "dots": dots}
    found = session.execute(sql.SQL(LIST_SQL).format(s=sql.Identifier(member.schema)),
                            params).fetchone()
    assert found is not None
    return tuple(found)


def _map(state: State, member: MemberScope, euis: list[str], states: list[str], lang: str,
         standalone: bool = False) -> tuple[Any, int]:
    """The map of these devices (those with a declared position) and how many it places."""
    words = {w: _state_word(w, lang) for w in STATES}
    positions = _positions(state, member.slug)
    pins = []
    for dev_eui, found_state in zip(euis, states, strict=True):
        place = positions.get(dev_eui)
        if place is not None:
            pins.append(svg.Pin(place[1], place[2], f"{place[0]} ({words[found_state]})",
                                f"{PREFIX}/m/{member.slug}/devices/{dev_eui}", found_state))
    title = "Carte des capteurs" if lang == "fr" else "Map of the devices"

    def cluster(n: int, silent: int) -> str:
        if n == 1:
            if lang == "fr":
                return "1 capteur ici" + (", silencieux" if silent else "")
            return "1 device here" + (", silent" if silent else "")
        if lang == "fr":
            return f"{n} capteurs ici, dont {silent} silencieux"
        return f"{n} devices here, {silent} of them silent"

    # An image's links cannot be followed: its dots are always groups.
    return svg.device_map(pins, title, "Échelle" if lang == "fr" else "Scale", cluster,
                          max_dots=0 if standalone else svg.MAX_DOTS,
                          standalone=standalone), len(pins)


@router.get("/m/{slug}/devices", name="console_devices")
def device_list(
    request: Request, member: ReadPage, session: ReadConn, state: State, audit_: Audit,
    filters: Annotated[Filters, Depends(_filters)],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    q, model, data_class, building, state_ = filters
    hidden = hidden_devices(state, member)
    shown, total, euis, states, models, classes, buildings = _listed(
        session, member, hidden, filters, svg.MAX_DOTS, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    rows = [{**r, "last_seen": dt.datetime.fromisoformat(r["last_seen"])
             if r["last_seen"] else None} for r in shown]
    lang = lang_of(request)
    query = {"q": q, "model": model, "class": data_class, "building": building,
             "state": state_}
    # Up to MAX_DOTS devices, the map is drawn in the page, each dot a link; beyond, it
    # groups close devices and is an image of its own, so that the page does not wait
    # for every device's position.
    drawn, pins = _map(state, member, euis, states, lang) if euis is not None else (None, 0)
    audit_.record("devices.read", member.slug, target="*",
                  params={"q": q, "model": model, "class": data_class, "building": building,
                          "state": state_, "page": page, "grant": member.grant_id,
                          "withheld_devices": len(hidden)}, rows=len(rows))
    return render(request, "devices.html", member=member_facts(state, member), rows=rows,
                  total=total, page=page, pages=max(1, -(-total // PAGE_SIZE)), query=query,
                  choices={"models": models, "classes": classes, "buildings": buildings},
                  states=STATES, withheld=len(hidden), map=drawn, pins=pins,
                  max_dots=svg.MAX_DOTS,
                  map_src=None if drawn is not None else
                  f"{PREFIX}/m/{member.slug}/devices/map.svg?{urlencode(query)}")


@router.get("/m/{slug}/devices/map.svg", name="console_device_map")
def device_map_image(
    request: Request, member: ReadPage, session: ReadConn, state: State, audit_: Audit,
    filters: Annotated[Filters, Depends(_filters)],
) -> Response:
    """The map of the devices the list's filters match, as an image of its own (the list
    shows it when they are too many to draw in the page)."""
    hidden = hidden_devices(state, member)
    _, _, euis, states, *_ = _listed(session, member, hidden, filters, 2**31 - 1, 0, 0)
    drawn, pins = _map(state, member, euis, states, lang_of(request), standalone=True)
    q, model, data_class, building, state_ = filters
    audit_.record("devices.read", member.slug, target="*",
                  params={"q": q, "model": model, "class": data_class, "building": building,
                          "state": state_, "map": True, "grant": member.grant_id,
                          "withheld_devices": len(hidden)}, rows=pins)
    return Response(str(drawn), media_type="image/svg+xml", headers={
        "Content-Security-Policy": "default-src 'none'",
        "Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})


def metric_label(metric: str, lang: str) -> str:
    """The public pages' words for a metric ("la température"), as a column label."""
    text = sentence_label(metric, "en" if lang == "en" else "fr")
    for article in ("la ", "le ", "les ", "l'", "the "):
        if text.startswith(article):
            text = text[len(article):]
            break
    return text[:1].upper() + text[1:]


def _state_word(value: str, lang: str) -> str:
    words = {"ok": ("en service", "in service"), "silent": ("silencieux", "silent"),
             "battery": ("batterie faible", "low battery")}
    fr, en = words.get(value, (value, value))
    return en if lang == "en" else fr


def _device(state: State, member: MemberScope, dev_eui: str) -> dict[str, Any]:
    """The device from the catalogue: 404 if not the member's, 403 if personal data the
    caller may not read (as the API)."""
    with state.dbs.control() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT d.dev_eui, d.name, d.model_id, d.active, d.public_id, d.spec,"
            " m.vendor, m.model, m.category FROM hv.devices d"
            " LEFT JOIN hv.device_models m ON m.id = d.model_id"
            " WHERE d.member_slug = %s AND d.dev_eui = %s", (member.slug, dev_eui)).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {dev_eui} not found")
    withheld(state, member, [dev_eui])
    return row


@router.get("/m/{slug}/devices/{dev_eui}", name="console_device")
def device_page(
    request: Request, member: ReadPage, session: ReadConn, state: State, audit_: Audit,
    dev_eui: DevEuiPath,
    metric: Annotated[str, Query(max_length=64)] = "",
    period: Annotated[str, Query(max_length=4)] = "7d",
) -> Response:
    device = _device(state, member, dev_eui)
    s = sql.Identifier(member.schema)
    at = now()
    config = settings_of(session, member.schema)
    found = health.device_states(session, member.schema, at, config.health, [dev_eui])
    current = found.get(dev_eui)
    latest = session.execute(sql.SQL(
        "SELECT DISTINCT ON (metric) metric, value, unit, time FROM {s}.measurements"
        " WHERE dev_eui = %s AND time > %s ORDER BY metric, time DESC").format(s=s),
        (dev_eui, at - dt.timedelta(days=30))).fetchall()
    metrics = [r[0] for r in latest]
    chosen = metric if metric in metrics else (metrics[0] if metrics else "")
    span, bucket = PERIODS.get(period, PERIODS["7d"])
    period = period if period in PERIODS else "7d"
    points: list[tuple[dt.datetime, float]] = []
    unit = ""
    if chosen:
        if bucket is None:
            query = sql.SQL("SELECT time, value FROM {s}.measurements WHERE dev_eui = %(d)s"
                            " AND metric = %(m)s AND time >= %(a)s ORDER BY time LIMIT 5000")
        else:
            query = sql.SQL(
                "SELECT time_bucket(%(w)s::interval, time) AS b, avg(value) FROM"
                " {s}.measurements WHERE dev_eui = %(d)s AND metric = %(m)s AND time >= %(a)s"
                " GROUP BY b ORDER BY b")
        points = [(r[0], float(r[1])) for r in session.execute(
            query.format(s=s), {"d": dev_eui, "m": chosen, "a": at - span, "w": bucket})
            if r[1] is not None]
        unit = next((r[2] or "" for r in latest if r[0] == chosen), "")
    radio = session.execute(sql.SQL(
        "SELECT g, count(*), avg(rssi), avg(snr), max(time) FROM {s}.uplinks u"
        " CROSS JOIN LATERAL unnest(u.gateways) AS g"
        " WHERE u.dev_eui = %s AND u.time > %s GROUP BY g ORDER BY count(*) DESC").format(s=s),
        (dev_eui, at - dt.timedelta(days=7))).fetchall()
    codec = session.execute(sql.SQL(
        "SELECT decode_errors, decode_warnings, last_decode_error, last_decode_error_at"
        " FROM {s}.device_state WHERE dev_eui = %s").format(s=s), (dev_eui,)).fetchone()
    errors = session.execute(sql.SQL(
        "SELECT time, f_cnt, f_port, decode_error FROM {s}.uplinks WHERE dev_eui = %s"
        " AND decode_error IS NOT NULL AND time > %s ORDER BY time DESC LIMIT 10").format(s=s),
        (dev_eui, at - dt.timedelta(days=30))).fetchall()
    sent = downlinks.list_downlinks(session, member.schema, dev_eui, 20)
    commands = _commands(device["model_id"]) if "admin" in member.principal.rights else []
    lang = lang_of(request)
    label = metric_label(chosen, lang) if chosen else ""
    audit_.record("measurements.read", member.slug, target=dev_eui,
                  params={"start": at - span, "end": at, "devices": [dev_eui],
                          "metrics": [chosen] if chosen else [], "bucket": bucket,
                          "grant": member.grant_id}, rows=len(points) + len(latest))
    spec = device["spec"] or {}
    chart_title = f"{label} — {device['name']}" if chosen else device["name"]
    return render(
        request, "device.html", member=member_facts(state, member), d=device, spec=spec,
        current=current, state_word=_state_word(current.state if current else "silent", lang),
        latest=[{"metric": r[0], "label": metric_label(r[0], lang), "value": r[1],
                 "unit": r[2] or "", "time": r[3]} for r in latest],
        metric=chosen, period=period, periods=list(PERIODS),
        chart=svg.line_chart(points, chart_title, unit, TZ), points=len(points),
        radio=radio, codec=codec, errors=errors, downlinks=sent, commands=commands,
        sent=request.query_params.get("sent"),
    )


def _commands(model_id: str) -> list[dict[str, Any]]:
    from hypervision.chirpstack.encoders import EncodeError, encoder_for

    try:
        encoder = encoder_for(model_id)
    except EncodeError:
        return []
    return [{"name": c.name, "description": c.description} for c in encoder.commands.values()]


@router.post("/m/{slug}/devices/{dev_eui}/commands", name="console_device_command")
def send_command(request: Request, member: AdminPage, state: State, form: PostedForm,
                 dev_eui: DevEuiPath) -> Response:
    """Queue a downlink through the API's own route (same checks, same audit entry)."""
    from hypervision.chirpstack import routes as downlink_routes

    _device(state, member, dev_eui)
    if member.principal.operator and not member.own:
        raise forbidden("commands are sent by the member's own admins")
    try:
        params = json.loads(form.get("params") or "{}")
        if not isinstance(params, dict):
            raise ValueError
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "the parameters must be a JSON object") from None
    actor = downlink_routes.Actor(
        actor=member.principal.actor, member=member.slug, may_command=True,
        request_id=getattr(request.state, "request_id", None),
        remote_addr=request.client.host if request.client else None)
    body = downlink_routes.DownlinkRequest(command=form.get("command", ""), params=params,
                                           confirmed=form.get("confirmed") == "on")
    downlink_routes.send_downlink(dev_eui, body, actor, state.dbs,
                                  downlink_routes.get_chirpstack())
    return RedirectResponse(f"{PREFIX}/m/{member.slug}/devices/{dev_eui}?sent=1#downlinks",
                            status_code=303)
