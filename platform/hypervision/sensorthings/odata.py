"""OData query options of the SensorThings API, as SQL: `$filter` (parsed by the
`odata-query` package's grammar, then translated here), `$orderby`, `$select`, `$expand`.

The translation is an allow-list: a property path becomes a column only through the
entity set's own map (entities.py), literals become bound parameters (psycopg
`sql.Literal`), and operators and functions come from the tables below. Anything else is
a `QueryError` (HTTP 400), never text pasted into SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from psycopg import sql


class QueryError(ValueError):
    """A query option the service cannot honour: HTTP 400 with this message."""


Resolver = Callable[[tuple[str, ...]], sql.Composable]

COMPARATORS: dict[type, str] = {
    ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}
ARITHMETIC: dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                               ast.Mod: "%"}
# Functions of the SensorThings filter (18-007r1 §9.3.3.5.2), as SQL templates.
FUNCTIONS: dict[str, tuple[int, str]] = {
    "startswith": (2, "starts_with({0}::text, {1}::text)"),
    "endswith": (2, "right({0}::text, length({1}::text)) = {1}::text"),
    "contains": (2, "strpos({0}::text, {1}::text) > 0"),
    "substringof": (2, "strpos({1}::text, {0}::text) > 0"),
    "indexof": (2, "strpos({0}::text, {1}::text) - 1"),
    "length": (1, "length({0}::text)"),
    "tolower": (1, "lower({0}::text)"),
    "toupper": (1, "upper({0}::text)"),
    "trim": (1, "btrim({0}::text)"),
    "concat": (2, "({0}::text || {1}::text)"),
    "substring": (2, "substr({0}::text, ({1})::int + 1)"),
    "year": (1, "extract(year FROM {0} AT TIME ZONE 'UTC')"),
    "month": (1, "extract(month FROM {0} AT TIME ZONE 'UTC')"),
    "day": (1, "extract(day FROM {0} AT TIME ZONE 'UTC')"),
    "hour": (1, "extract(hour FROM {0} AT TIME ZONE 'UTC')"),
    "minute": (1, "extract(minute FROM {0} AT TIME ZONE 'UTC')"),
    "second": (1, "extract(second FROM {0} AT TIME ZONE 'UTC')"),
    "round": (1, "round(({0})::numeric)"),
    "floor": (1, "floor({0})"),
    "ceiling": (1, "ceil({0})"),
    "now": (0, "now()"),
}


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_filter(text: str) -> ast._Node:
    try:
        return ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise QueryError(f"$filter: {exc}") from None
    except Exception as exc:  # the grammar raises plain errors on some inputs
        raise QueryError(f"$filter: cannot parse {text!r} ({type(exc).__name__})") from None


def path_of(node: ast._Node) -> tuple[str, ...]:
    if isinstance(node, ast.Identifier):
        return (*node.namespace, node.name)
    if isinstance(node, ast.Attribute):
        return (*path_of(node.owner), node.attr)
    raise QueryError(f"not a property path: {type(node).__name__}")


def to_sql(node: ast._Node, resolve: Resolver) -> sql.Composable:
    """The SQL of a parsed `$filter` expression."""
    if isinstance(node, ast.Identifier | ast.Attribute):
        return resolve(path_of(node))
    if isinstance(node, ast.BoolOp):
        op = "AND" if isinstance(node.op, ast.And) else "OR"
        return sql.SQL("({} {} {})").format(to_sql(node.left, resolve), sql.SQL(op),
                                            to_sql(node.right, resolve))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return sql.SQL("(NOT {})").format(to_sql(node.operand, resolve))
        if isinstance(node.op, ast.USub):
            return sql.SQL("(-{})").format(to_sql(node.operand, resolve))
    if isinstance(node, ast.Compare):
        if isinstance(node.comparator, ast.In):
            members: list[sql.Composable] = [
                to_sql(v, resolve) for v in node.right.val]  # type: ignore[attr-defined]
            return sql.SQL("({} IN ({}))").format(to_sql(node.left, resolve),
                                                  sql.Composed(members).join(", "))
        left, right = to_sql(node.left, resolve), to_sql(node.right, resolve)
        if isinstance(node.right, ast.Null) or isinstance(node.left, ast.Null):
            is_ = "IS" if isinstance(node.comparator, ast.Eq) else "IS NOT"
            column = left if isinstance(node.right, ast.Null) else right
            return sql.SQL("({} {} NULL)").format(column, sql.SQL(is_))
        comparison = COMPARATORS.get(type(node.comparator))
        if comparison is None:
            raise QueryError(f"$filter: unsupported comparison {node.comparator}")
        return sql.SQL("({} {} {})").format(left, sql.SQL(comparison), right)
    if isinstance(node, ast.BinOp):
        arithmetic = ARITHMETIC.get(type(node.op))
        if arithmetic is None:
            raise QueryError("$filter: unsupported operator")
        return sql.SQL("({} {} {})").format(to_sql(node.left, resolve), sql.SQL(arithmetic),
                                            to_sql(node.right, resolve))
    if isinstance(node, ast.Call):
        name = node.func.name.lower()
        if name not in FUNCTIONS:
            raise QueryError(f"$filter: function {node.func.name}() is not supported")
        arity, template = FUNCTIONS[name]
        if len(node.args) != arity:
            raise QueryError(f"$filter: {name}() takes {arity} argument(s)")
        return sql.SQL(template).format(*(to_sql(a, resolve) for a in node.args))
    if isinstance(node, ast.String):
        return sql.Literal(node.val)
    if isinstance(node, ast.Integer):
        return sql.Literal(int(node.val))
    if isinstance(node, ast.Float):
        return sql.Literal(float(node.val))
    if isinstance(node, ast.Boolean):
        return sql.Literal(node.val.lower() == "true")
    if isinstance(node, ast.DateTime):
        return sql.SQL("{}::timestamptz").format(sql.Literal(_timestamp(node.val)))
    if isinstance(node, ast.Date):
        return sql.SQL("{}::date").format(sql.Literal(dt.date.fromisoformat(node.val)))
    if isinstance(node, ast.Null):
        return sql.SQL("NULL")
    raise QueryError(f"$filter: unsupported expression {type(node).__name__}")


ORDER_ITEM = re.compile(r"^\s*([A-Za-z_][\w/]*)\s*(?:\s(asc|desc))?\s*$", re.IGNORECASE)


def order_by(text: str, resolve: Resolver) -> list[sql.Composable]:
    items: list[sql.Composable] = []
    for part in text.split(","):
        match = ORDER_ITEM.match(part)
        if not match:
            raise QueryError(f"$orderby: cannot read {part.strip()!r}")
        column = resolve(tuple(match[1].split("/")))
        direction = "DESC" if (match[2] or "").lower() == "desc" else "ASC"
        items.append(sql.SQL("{} {}").format(column, sql.SQL(direction)))
    return items


@dataclass
class Options:
    """The query options of one request (or of one `$expand`ed navigation property)."""

    filter: str | None = None
    orderby: str | None = None
    select: list[str] | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    expand: dict[str, Options] = field(default_factory=dict)


def _int(name: str, value: str, high: int) -> int:
    if not value.isdigit() or int(value) > high:
        raise QueryError(f"{name} must be a whole number from 0 to {high}")
    return int(value)


def _split(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses and quotes."""
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == sep and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def options(params: dict[str, str], max_top: int, nested: bool = False) -> Options:
    known = {"$filter", "$orderby", "$select", "$top", "$skip", "$count", "$expand",
             "$resultFormat"}
    for key in params:
        if key.startswith("$") and key not in known:
            raise QueryError(f"unknown query option {key}")
    result = Options(filter=params.get("$filter"), orderby=params.get("$orderby"))
    if "$select" in params:
        result.select = [s.strip() for s in params["$select"].split(",") if s.strip()]
    if "$top" in params:
        result.top = _int("$top", params["$top"], max_top)
    if "$skip" in params:
        result.skip = _int("$skip", params["$skip"], 10**9)
    if "$count" in params:
        if params["$count"] not in ("true", "false"):
            raise QueryError("$count must be true or false")
        result.count = params["$count"] == "true"
    for item in _split(params.get("$expand", ""), ","):
        name, _, rest = item.partition("(")
        if "/" in name:
            raise QueryError("$expand goes one level deep here")
        inner: dict[str, str] = {}
        if rest:
            if not rest.endswith(")"):
                raise QueryError(f"$expand: cannot read {item!r}")
            for option in _split(rest[:-1], ";"):
                key, _, value = option.partition("=")
                inner[key.strip()] = value.strip()
            if "$expand" in inner:
                raise QueryError("$expand goes one level deep here")
        result.expand[name.strip()] = options(inner, max_top, nested=True)
    return result
