"""The OGC SensorThings API 1.1 (read part) of one member: `/sta/v1.1/<member>/...`.

Same tokens, rights and scoping as the platform API (hypervision.api.deps): a member's
people read their member; operators read every member, without the personal data classes
unless they hold a grant. Reads go through the member's reader role; each request is one
entry in the member's journal (`sensorthings.read`), and each agreement it reads under is
journalled by the database for both members (hv.share_gate) and by this module.

Supported: the service root, entity sets, one entity (`Things('id')`), navigation
(`Things('id')/Datastreams`), a property (`Things('id')/name`) and its `$value`;
`$filter`, `$select`, `$orderby`, `$top` (default 100, at most HV_... 10 000), `$skip`,
`$count` and `$expand` one level deep (with nested `$select`, `$filter`, `$orderby`,
`$top`, `$skip`). Not supported: creating or changing entities (the sensing part is read
only), MQTT, geospatial functions. See docs/sharing.md, "SensorThings".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from psycopg import sql
from psycopg.rows import dict_row

from hypervision.api.deps import Audit, ReadMember, ReadSession, State
from hypervision.api.routes.measurements import withheld
from hypervision.sensorthings import entities
from hypervision.sensorthings.entities import ENTITIES, Context, DeviceRow, Entity, Share
from hypervision.sensorthings.odata import (
    Options,
    QueryError,
    options,
    order_by,
    parse_filter,
    to_sql,
)

router = APIRouter(tags=["sensorthings"])
PREFIX = "/sta/v1.1"
DEFAULT_TOP = 100
MAX_TOP = 10_000
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
PATH = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<id>'(?:[^']|'')*'|\d+)\))?"
                  r"(?:/(?P<nav>[A-Za-z]+))?(?:/(?P<value>\$value))?$")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "type": "error", "message": message},
                        status_code=status)


def context(state: State, member: Any, session: psycopg.Connection) -> Context:
    """The member's own devices (without the personal ones it may not read) and the
    agreements in force it receives."""
    hidden = set(withheld(state, member, []))
    with state.dbs.control() as conn:
        rows = conn.execute(
            "SELECT dev_eui, name, model_id, coalesce(spec ->> 'data_class', 'technical'),"
            " (spec -> 'location' ->> 'lat')::float8, (spec -> 'location' ->> 'lon')::float8"
            " FROM hv.devices WHERE member_slug = %s AND active ORDER BY dev_eui",
            (member.slug,)).fetchall()
        shares = conn.execute(
            "SELECT provider, name, schema_name FROM hv.share_agreements"
            " WHERE recipient_member = %s AND state = 'active' AND starts_at <= now()"
            " AND ends_at > now() ORDER BY id", (member.slug,)).fetchall()
    own = [DeviceRow(r[0], r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows
           if r[0] not in hidden]
    return Context(member.schema, own, [Share(*s) for s in shares])


def _id_literal(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    return raw


class Query:
    """One SELECT of an entity set with its options, inside the request's context."""

    def __init__(self, ctx: Context, entity: Entity, opts: Options,
                 where: list[sql.Composable] | None = None) -> None:
        self.ctx, self.entity, self.opts = ctx, entity, opts
        resolve = entities.resolver(entity, "e")
        self.where = list(where or [])
        if opts.filter:
            self.where.append(to_sql(parse_filter(opts.filter), resolve))
        self.order = order_by(opts.orderby, resolve) if opts.orderby else []
        self.order.append(sql.SQL("{} ASC").format(sql.Identifier("e", "id")))

    def _from(self) -> sql.Composable:
        where = (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self.where)) if self.where \
            else sql.SQL("")
        return sql.SQL("{} SELECT e.* FROM ({}) AS e{}").format(
            self.ctx.ctes(), sql.SQL(self.entity.base), where)

    def rows(self, conn: psycopg.Connection, top: int) -> list[dict[str, Any]]:
        query = sql.SQL("{} ORDER BY {} LIMIT {} OFFSET {}").format(
            self._from(), sql.SQL(", ").join(self.order), sql.Literal(top),
            sql.Literal(self.opts.skip))
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query).fetchall()

    def count(self, conn: psycopg.Connection) -> int:
        row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS c").format(
            self._from())).fetchone()
        return int(row[0]) if row else 0


def _select(body: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if names is None:
        return body
    keep = {"@iot.id" if n == "id" else n for n in names}
    keep |= {f"{n}@iot.navigationLink" for n in names}
    return {k: v for k, v in body.items() if k in keep or k.split("@")[0] in keep}


def _related_where(entity: Entity, nav: str, row: dict[str, Any]) -> tuple[Entity, list[
        sql.Composable], bool]:
    relation = entity.relations.get(nav)
    if relation is None:
        raise QueryError(f"{entity.name} have no navigation property {nav!r}")
    target = ENTITIES[relation.target]
    where: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier("e", t), sql.Literal(row[s]))
        for t, s in relation.on]
    return target, where, relation.many


class Reader:
    def __init__(self, conn: psycopg.Connection, ctx: Context, base: str) -> None:
        self.conn, self.ctx, self.base = conn, ctx, base

    def entity_body(self, entity: Entity, row: dict[str, Any], opts: Options) -> dict[str, Any]:
        body = entity.render(row, self.base)
        for nav, inner in opts.expand.items():
            target, where, many = _related_where(entity, nav, row)
            if many:
                body[nav] = self.collection(target, inner, where, link=None)["value"]
            else:
                found = Query(self.ctx, target, inner, where).rows(self.conn, 1)
                if found:
                    body[nav] = self.entity_body(target, found[0], inner)
        return _select(body, opts.select)

    def collection(self, entity: Entity, opts: Options, where: list[sql.Composable],
                   link: str | None, params: dict[str, str] | None = None) -> dict[str, Any]:
        top = DEFAULT_TOP if opts.top is None else opts.top
        query = Query(self.ctx, entity, opts, where)
        rows = query.rows(self.conn, top + 1)
        result: dict[str, Any] = {}
        if opts.count:
            result["@iot.count"] = query.count(self.conn)
        if len(rows) > top and link is not None:
            following = {**(params or {}), "$top": str(top), "$skip": str(opts.skip + top)}
            result["@iot.nextLink"] = f"{link}?{urlencode(following)}"
        result["value"] = [self.entity_body(entity, r, opts) for r in rows[:top]]
        return result


def _root(base: str) -> dict[str, Any]:
    names = ("Things", "Locations", "HistoricalLocations", "Datastreams", "Sensors",
             "ObservedProperties", "Observations", "FeaturesOfInterest")
    return {"value": [{"name": n, "url": f"{base}/{n}"} for n in names],
            "serverSettings": {"conformance": CONFORMANCE}}


@router.get(PREFIX + "/{slug}", name="sta_root")
def service_root(member: ReadMember, request: Request) -> dict[str, Any]:
    """The service root: the entity sets and the conformance classes."""
    return _root(str(request.url_for("sta_root", slug=member.slug)).rstrip("/"))


@router.get(PREFIX + "/{slug}/{path:path}", name="sta_path")
def read(member: ReadMember, session: ReadSession, state: State, audit_: Audit,
         request: Request, path: str) -> Response:
    """One SensorThings resource path of the member."""
    base = str(request.url_for("sta_root", slug=member.slug)).rstrip("/")
    if not path.strip("/"):
        return JSONResponse(_root(base))
    match = PATH.match(path.strip("/"))
    if match is None or match["set"] not in ENTITIES:
        return error(404, f"no resource {path!r}")
    params = dict(request.query_params)
    try:
        opts = options(params, MAX_TOP)
        ctx = context(state, member, session)
        reader = Reader(session, ctx, base)
        entity = ENTITIES[match["set"]]
        ident = _id_literal(match["id"])
        link = f"{base}/{path.strip('/')}"
        if ident is None:
            if match["nav"] or match["value"]:
                return error(404, f"no resource {path!r}")
            body = reader.collection(entity, opts, [], link, params)
            count = len(body["value"])
        else:
            found = Query(ctx, entity, Options(), [sql.SQL("e.id = {}").format(
                sql.Literal(ident))]).rows(session, 1)
            if not found:
                return error(404, f"{entity.name}('{ident}') not found")
            nav = match["nav"]
            if nav and nav in entity.relations:
                target, where, many = _related_where(entity, nav, found[0])
                if many:
                    body = reader.collection(target, opts, where, link, params)
                    count = len(body["value"])
                else:
                    rows = Query(ctx, target, Options(), where).rows(session, 1)
                    if not rows:
                        return error(404, f"no {nav} for {entity.name}('{ident}')")
                    body, count = reader.entity_body(target, rows[0], opts), 1
            elif nav:
                full = entity.render(found[0], base)
                if nav not in full:
                    return error(404, f"{entity.name} have no property {nav!r}")
                if match["value"]:
                    return PlainTextResponse(str(full[nav]))
                body, count = {nav: full[nav]}, 1
            else:
                body, count = reader.entity_body(entity, found[0], opts), 1
    except QueryError as exc:
        return error(400, str(exc))
    except psycopg.errors.InsufficientPrivilege:
        return error(403, "an agreement this member reads under is no longer in force;"
                          " retry")
    except (psycopg.errors.DataError, psycopg.errors.UndefinedFunction) as exc:
        return error(400, f"$filter: {type(exc).__name__}: the types do not match")
    audit_.record("sensorthings.read", member.slug, target=f"sta/{path}",
                  params={k: v for k, v in params.items() if k.startswith("$")}, rows=count)
    for share in ctx.shares:
        for slug, side in ((share.provider, "provider"), (member.slug, "recipient")):
            audit_.record("share.read", slug, target=f"{share.schema} via sta/{path}",
                          params={"agreement": f"{share.provider}/{share.name}",
                                  "side": side, "via": "sensorthings"})
    return JSONResponse(body)

