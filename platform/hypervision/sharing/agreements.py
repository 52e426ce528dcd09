"""Sharing agreements in the database: the views a recipient reads, their grants, expiry.

An agreement is declared in the provider's tenant file (`shares:`, tenancy.spec.Share).
`tenants apply` calls `steps()` for each member; each agreement becomes:

1. a row of `hv.share_agreements` (the declaration, its dates and its state);
2. a schema `share_<provider>__<name>` owned by the provider's owner role, holding two
   security-barrier views, `devices` and `measurements`, limited to the agreement's
   devices, metrics and period (devices under keyed pseudonyms when asked). The views
   read the provider's tables with their owner's rights, so the recipient needs no right
   on the provider's schema;
3. while the agreement is in force, USAGE on that schema and SELECT on its views for the
   recipient's reader role (the role the API, the console and Superset read with).

Every read of a view goes through `hv.share_gate` (migration 1600): refused unless the
agreement is in force, and written to both members' journals. `expire()` (the periodic
job, hypervision.jobs.sharing) revokes the grants of agreements past their end.
See docs/sharing.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hypervision import audit
from hypervision.pseudonym import Pseudonymiser, member_secret
from hypervision.settings import Settings
from hypervision.tenancy.spec import Device, Share, TenantSpec, member_role

Action = Callable[[psycopg.Connection], None]
VIEWS = ("devices", "measurements")


def schema_of(provider: str, share: str) -> str:
    """`share_<provider>__<name>`, hyphens as underscores; tenancy.spec refuses a name that
    would make it longer than PostgreSQL's 63-byte identifiers."""
    return f"share_{provider}__{share.replace('-', '_')}"


def shared_devices(spec: TenantSpec, share: Share) -> list[Device]:
    return [d for d in spec.devices
            if d.data_class in share.data_classes or d.dev_eui in share.devices]


@dataclass(frozen=True)
class SharedDevice:
    """One device as the recipient sees it."""

    dev_eui: str
    id: str
    name: str | None
    model: str
    data_class: str
    lat: float | None
    lon: float | None


def device_table(spec: TenantSpec, share: Share, settings: Settings) -> list[SharedDevice]:
    pseudo = Pseudonymiser(member_secret(settings, spec.name)) if share.pseudonymise else None
    rows = []
    for d in shared_devices(spec, share):
        located = d.location is not None and pseudo is None
        rows.append(SharedDevice(
            dev_eui=d.dev_eui,
            id=pseudo.dev_eui(d.dev_eui) if pseudo else d.dev_eui,
            name=None if pseudo else d.name, model=d.model, data_class=d.data_class,
            lat=d.location.lat if located and d.location else None,
            lon=d.location.lon if located and d.location else None))
    return rows


def _values(devices: Sequence[SharedDevice]) -> sql.Composable:
    """The agreement's devices as an inline table: fixed at apply time, so adding a device
    to a data class shares it at the next `tenants apply`, as every change of the file."""
    columns = sql.SQL("(dev_eui, id, name, model, data_class, lat, lon)")
    if not devices:
        return sql.SQL("(SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,"
                       " NULL::float8, NULL::float8 WHERE false) AS d {}").format(columns)
    rows = sql.SQL(", ").join(
        sql.SQL("({}::text, {}::text, {}::text, {}::text, {}::text, {}::float8, {}::float8)")
        .format(*(sql.Literal(v) for v in (d.dev_eui, d.id, d.name, d.model, d.data_class,
                                          d.lat, d.lon)))
        for d in devices)
    return sql.SQL("(VALUES {}) AS d {}").format(rows, columns)


def _views(conn: psycopg.Connection, spec: TenantSpec, share: Share, agreement: int,
           devices: Sequence[SharedDevice]) -> None:
    """Create or replace the agreement's schema and views, owned by the provider's owner.

    The gate is an uncorrelated sub-select: PostgreSQL evaluates it once, before the first
    row, as a one-time filter; a read that returns no row is still checked and audited.
    """
    schema = schema_of(spec.name, share.name)
    owner = sql.Identifier(spec.role("owner"))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
        sql.Identifier(schema), owner))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION hv.share_gate(bigint, text) TO {}")
                 .format(owner))

    def gate(view: str) -> sql.Composable:
        return sql.SQL("(SELECT hv.share_gate({}, {}))").format(
            sql.Literal(agreement), sql.Literal(view))

    conditions: list[sql.Composable] = [gate("measurements")]
    if share.metrics:
        conditions.append(sql.SQL("m.metric = ANY({})").format(sql.Literal(share.metrics)))
    if share.data_from:
        conditions.append(sql.SQL("m.time >= {}").format(sql.Literal(
            dt.datetime.combine(share.data_from, dt.time(), dt.UTC))))
    if share.data_until:
        conditions.append(sql.SQL("m.time < {}").format(sql.Literal(
            dt.datetime.combine(share.data_until, dt.time(), dt.UTC))))
    statements = [
        sql.SQL("CREATE OR REPLACE VIEW {} WITH (security_barrier) AS"
                " SELECT d.id AS device, d.name, d.model, d.data_class, d.lat, d.lon"
                " FROM {} WHERE {}").format(
            sql.Identifier(schema, "devices"), _values(devices), gate("devices")),
        sql.SQL("CREATE OR REPLACE VIEW {} WITH (security_barrier) AS"
                " SELECT m.time, d.id AS device, m.metric, m.value, m.unit, m.ingested_xid"
                " FROM {} JOIN {} ON m.dev_eui = d.dev_eui WHERE {}").format(
            sql.Identifier(schema, "measurements"),
            sql.SQL("{} AS m").format(sql.Identifier(spec.schema, "measurements")),
            _values(devices), sql.SQL(" AND ").join(conditions)),
    ]
    for statement in statements:
        conn.execute(statement)
    for view in VIEWS:
        conn.execute(sql.SQL("ALTER VIEW {} OWNER TO {}").format(
            sql.Identifier(schema, view), owner))
        conn.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(
            sql.Identifier(schema, view),
            sql.Literal(f"Shared by {spec.name} under agreement '{share.name}':"
                        f" {share.purpose} (legal basis: {share.legal_basis};"
                        f" until {share.ends.isoformat()})")))


def grant(conn: psycopg.Connection, schema: str, recipient: str) -> None:
    reader = sql.Identifier(member_role(recipient, "reader"))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema),
                                                                  reader))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
        sql.Identifier(schema), reader))
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION hv.share_gate(bigint, text) TO {}")
                 .format(reader))


def revoke(conn: psycopg.Connection, schema: str, recipient: str) -> None:
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                    (schema,)).fetchone() is None:
        return
    reader = sql.Identifier(member_role(recipient, "reader"))
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
        sql.Identifier(schema), reader))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(schema),
                                                                 reader))


def _record_both(conn: psycopg.Connection, row: dict[str, Any], action: str, actor: str,
                 source: str, params: dict[str, Any]) -> None:
    """One entry in the provider's journal and one in the recipient member's."""
    target = f"{row['provider']}/{row['name']}"
    for member, side in ((row["provider"], "provider"), (row["recipient_member"], "recipient")):
        if member is not None:
            audit.record(conn, actor=actor, member=member, action=action, target=target,
                         params={**params, "side": side, "schema": row["schema_name"]},
                         source=source)


def describe(share: Share, devices: int) -> str:
    to = f"member {share.recipient}" if share.recipient else f"partner {share.partner.name}"  # type: ignore[union-attr]
    what = ", ".join(share.data_classes) or "named devices"
    metrics = ", ".join(share.metrics) or "all metrics"
    extra = ", pseudonymised" if share.pseudonymise else ""
    delivery = (f", delivered {share.delivery.schedule} as {share.delivery.format}"
                if share.delivery else "")
    return (f"share {share.name} → {to}: {what} ({devices} devices; {metrics}{extra}),"
            f" {share.starts} to {share.ends}, for {share.purpose!r}"
            f" [{share.legal_basis}]{delivery}")


def _in_force(share: Share, now: dt.datetime) -> bool:
    return share.starts_at <= now < share.ends_at


def steps(conn: psycopg.Connection, spec: TenantSpec, settings: Settings,
          actor: str) -> list[tuple[str, str, Action | None]]:
    """The plan's steps for one member's agreements: (symbol, what, action)."""
    now = dt.datetime.now(dt.UTC)
    with conn.cursor(row_factory=dict_row) as cur:
        current = {r["name"]: r for r in cur.execute(
            "SELECT * FROM hv.share_agreements WHERE provider = %s", (spec.name,)).fetchall()}
    result: list[tuple[str, str, Action | None]] = []
    for share in spec.shares:
        devices = device_table(spec, share, settings)
        body = {**share.model_dump(mode="json"), "devices_shared": [d.id for d in devices]}
        row = current.get(share.name)
        what = f"{spec.name}: {describe(share, len(devices))}"
        in_force = _in_force(share, now)
        expected = "active" if share.ends_at > now else "expired"
        if row is not None and audit_json(row["spec"]) == audit_json(body) \
                and row["state"] == expected:
            state = "in force" if in_force else ("expired" if share.ends_at <= now
                                                 else "not yet in force")
            result.append(("=", f"{what} ({state})",
                           _ensure(spec, share, devices, body, settings, actor, quiet=True)))
            continue
        symbol = "+" if row is None else "~"
        if not in_force:
            what += " (expired: no access)" if share.ends_at <= now else " (not yet in force)"
        result.append((symbol, what, _ensure(spec, share, devices, body, settings, actor)))
    for name, row in sorted(current.items()):
        if name not in {s.name for s in spec.shares} and row["state"] != "withdrawn":
            result.append(("-", f"{spec.name}: share {name} withdrawn: access revoked (the"
                                " journals keep its reads)", _withdraw(row, actor)))
    return result


def audit_json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _ensure(spec: TenantSpec, share: Share, devices: list[SharedDevice], body: dict[str, Any],
            settings: Settings, actor: str, quiet: bool = False) -> Action:
    def run(conn: psycopg.Connection) -> None:
        now = dt.datetime.now(dt.UTC)
        schema = schema_of(spec.name, share.name)
        state = "active" if share.ends_at > now else "expired"
        with conn.cursor(row_factory=dict_row) as cur:
            before = cur.execute("SELECT * FROM hv.share_agreements WHERE provider = %s"
                                 " AND name = %s", (spec.name, share.name)).fetchone()
            row = cur.execute(
                """
                INSERT INTO hv.share_agreements (provider, name, recipient_member,
                    recipient_partner, schema_name, starts_at, ends_at, spec, state, ended_at)
                VALUES (%(provider)s, %(name)s, %(member)s, %(partner)s, %(schema)s,
                        %(starts)s, %(ends)s, %(spec)s, %(state)s,
                        CASE WHEN %(state)s = 'active' THEN NULL ELSE now() END)
                ON CONFLICT (provider, name) DO UPDATE SET
                    recipient_member = EXCLUDED.recipient_member,
                    recipient_partner = EXCLUDED.recipient_partner,
                    starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
                    spec = EXCLUDED.spec, state = EXCLUDED.state,
                    ended_at = CASE WHEN EXCLUDED.state = 'active' THEN NULL
                               ELSE coalesce(hv.share_agreements.ended_at, now()) END,
                    updated_at = now()
                RETURNING *
                """,
                {"provider": spec.name, "name": share.name, "member": share.recipient,
                 "partner": share.partner.name if share.partner else None, "schema": schema,
                 "starts": share.starts_at, "ends": share.ends_at, "spec": Jsonb(body),
                 "state": state}).fetchone()
        assert row is not None
        _views(conn, spec, share, int(row["id"]), devices)
        if before is not None and before["recipient_member"] not in (None, share.recipient):
            revoke(conn, schema, before["recipient_member"])
        if share.recipient is not None:
            if _in_force(share, now):
                grant(conn, schema, share.recipient)
            else:
                revoke(conn, schema, share.recipient)
        if not quiet:
            _record_both(conn, row, "share.declared" if before is None else "share.changed",
                         actor, "cli", {"agreement": body,
                                        "before": before["spec"] if before else None})

    return run


def _withdraw(row: dict[str, Any], actor: str) -> Action:
    def run(conn: psycopg.Connection) -> None:
        if row["recipient_member"] is not None:
            revoke(conn, row["schema_name"], row["recipient_member"])
        conn.execute("UPDATE hv.share_agreements SET state = 'withdrawn', ended_at = now(),"
                     " updated_at = now() WHERE id = %s", (row["id"],))
        _record_both(conn, row, "share.withdrawn", actor, "cli", {})

    return run


def expire(conn: psycopg.Connection, actor: str = "system:sharing",
           source: str = "job") -> list[str]:
    """Revoke the access of every agreement past its end; returns `provider/name` of each.

    Claimed with a conditional UPDATE (state 'active' → 'expired'), so two runs at once
    expire an agreement once; the grants are revoked in the same transaction."""
    ended: list[str] = []
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "UPDATE hv.share_agreements SET state = 'expired', ended_at = now(),"
            " updated_at = now() WHERE state = 'active' AND ends_at <= now() RETURNING *"
        ).fetchall()
        for row in rows:
            if row["recipient_member"] is not None:
                revoke(conn, row["schema_name"], row["recipient_member"])
            _record_both(conn, row, "share.expired", actor, source,
                         {"ends_at": row["ends_at"].isoformat()})
            ended.append(f"{row['provider']}/{row['name']}")
    return ended
