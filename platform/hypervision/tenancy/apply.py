"""Desired state (tenant files, device catalogue) versus the database, as ordered steps.

`plan()` reads only and returns the steps with a symbol each (`+` create, `~` change,
`=` unchanged, `-` deactivate). `apply()` computes the plan again and runs it; every step
is idempotent, so applying twice changes nothing the second time. Removing a device or a
member from the files deactivates it; data is never deleted here.

Roles per member (named and granted by hypervision.roles; docs/architecture.md, "Tenancy"):
- `<slug>_owner` (no login) owns the schema and its tables;
- `<slug>_writer` (no login) may insert raw uplinks and measurements and track downlinks;
  the platform's ingest login role is a member of every writer role and switches with
  SET ROLE;
- `<slug>_reader` (login, its own random password: hypervision.role_secrets) reads the
  member's tables only: dashboards and exports connect with it, so isolation holds in
  the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision import accounts, audit, migrate, placement, role_secrets, roles
from hypervision.analytics import members as analytics_members
from hypervision.roles import ensure_api_role, ensure_public_role
from hypervision.roles import limit_reader as limit_reader  # where it used to be
from hypervision.settings import Settings
from hypervision.sharing import agreements
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue

Action = Callable[[psycopg.Connection], None]
ACTOR = "system:tenancy"


@dataclass
class Step:
    symbol: str
    what: str
    action: Action | None = field(default=None, repr=False)
    # The database server the action runs on (hypervision.placement); None: the primary.
    server: str | None = None
    # For a change of the member's declaration: the changed fields, before and after,
    # written to the audit trail with the change.
    before: dict[str, Any] | None = field(default=None, repr=False)
    after: dict[str, Any] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.symbol} {self.what}"


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def _create_role(role: str, login: bool) -> Action:
    return lambda conn: roles.create_role(conn, role, login=login)


def _set_password(role: str, password: str, inherit: bool = True) -> Action:
    return lambda conn: roles.set_password(conn, role, password, inherit=inherit)


def _ingest_grants(settings: Settings) -> Action:
    return lambda conn: roles.grant_ingest(conn, settings)


def _member_grants(spec: TenantSpec, settings: Settings) -> Action:
    return lambda conn: roles.grant_member(conn, settings, spec.name, spec.schema)


def _create_schema(spec: TenantSpec) -> Action:
    def run(conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(spec.schema), sql.Identifier(spec.role("owner"))
            )
        )

    return run


def _migrate_member(spec: TenantSpec) -> Action:
    def run(conn: psycopg.Connection) -> None:
        migrate.migrate_tenant(conn, spec.schema, spec.role("owner"), log=lambda _: None)

    return run


def _upsert_member(spec: TenantSpec, server: str | None = None) -> Action:
    """Insert or update the member's catalogue row; `server` is recorded when the member is
    created (hypervision.placement), and only a move changes it later."""

    def run(conn: psycopg.Connection) -> None:
        conn.execute(
            """
            INSERT INTO hv.members
                (slug, name, kind, siren, schema_name, spec, suspended, server)
            VALUES (%(slug)s, %(name)s, %(kind)s, %(siren)s, %(schema)s, %(spec)s,
                    %(suspended)s, %(server)s)
            ON CONFLICT (slug) DO UPDATE SET
                name = EXCLUDED.name, kind = EXCLUDED.kind, siren = EXCLUDED.siren,
                spec = EXCLUDED.spec, suspended = EXCLUDED.suspended, updated_at = now()
            """,
            {**_member_row(spec), "server": server},
        )

    return run


def _member_row(spec: TenantSpec) -> dict[str, Any]:
    body = spec.model_dump(mode="json", exclude={"devices"})
    if body.get("server") is None:
        # Members placed on the primary keep the declaration they had before servers
        # could be named (no change to report).
        body.pop("server", None)
    return {
        "slug": spec.name,
        "name": spec.identity.name,
        "kind": spec.identity.kind,
        "siren": spec.identity.siren,
        "schema": spec.schema,
        "spec": Jsonb(body),
        "suspended": spec.suspended,
    }


def _device_rows(spec: TenantSpec) -> list[dict[str, Any]]:
    return [
        {
            "dev_eui": d.dev_eui,
            "member": spec.name,
            "model": d.model,
            "name": d.name,
            "variables": d.variables,
            "spec": d.model_dump(mode="json"),
        }
        for d in spec.devices
    ]


def _upsert_devices(rows: list[dict[str, Any]]) -> Action:
    def run(conn: psycopg.Connection) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO hv.devices
                    (dev_eui, member_slug, model_id, name, variables, spec, active)
                VALUES (%(dev_eui)s, %(member)s, %(model)s, %(name)s, %(variables)s, %(spec)s, true)
                ON CONFLICT (dev_eui) DO UPDATE SET
                    member_slug = EXCLUDED.member_slug, model_id = EXCLUDED.model_id,
                    name = EXCLUDED.name, variables = EXCLUDED.variables, spec = EXCLUDED.spec,
                    active = true, updated_at = now()
                """,
                [
                    {**r, "variables": Jsonb(r["variables"]), "spec": Jsonb(r["spec"])}
                    for r in rows
                ],
            )

    return run


def _deactivate_devices(dev_euis: list[str]) -> Action:
    def run(conn: psycopg.Connection) -> None:
        conn.execute(
            "UPDATE hv.devices SET active = false, updated_at = now() WHERE dev_eui = ANY(%s)",
            (dev_euis,),
        )

    return run


def _upsert_models(catalogue: Catalogue, ids: list[str]) -> Action:
    def run(conn: psycopg.Connection) -> None:
        for model_id in ids:
            model = catalogue.get(model_id)
            conn.execute(
                """
                INSERT INTO hv.device_models (id, vendor, model, category, spec)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET vendor = EXCLUDED.vendor, model = EXCLUDED.model,
                    category = EXCLUDED.category, spec = EXCLUDED.spec, updated_at = now()
                """,
                (model.id, model.vendor, model.model, model.category,
                 Jsonb(model.model_dump(mode="json"))),
            )

    return run


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _on_server(settings: Settings, name: str) -> Settings:
    """The settings as seen from a member server: its database's name in the grants."""
    return settings.model_copy(update={"pg_database": placement.server(settings, name).database})


def _server_setup(settings: Settings, name: str) -> Action:
    """A member server gets the structure of the control schema (the staging tables the
    pipeline copies into, the migration ledger, receipts; no catalogue rows), the ingest
    role and the API role, with the same passwords as on the primary."""
    here = _on_server(settings, name)

    def run(conn: psycopg.Connection) -> None:
        migrate.migrate_control(conn, log=lambda _: None)
        roles.create_role(conn, here.ingest_role, login=True)
        roles.set_password(conn, here.ingest_role, here.ensure_role_password(here.ingest_role),
                           inherit=False)
        roles.grant_ingest(conn, here)
        ensure_api_role(conn, here)

    return run


def placements(conn: psycopg.Connection, specs: Sequence[TenantSpec],
               settings: Settings) -> dict[str, str | None]:
    """Each member's server (None: the primary): where it is for a member that exists,
    what its file names for a new one. PlacementError names the file of an unknown server."""
    placed: dict[str, str | None] = dict(
        conn.execute("SELECT slug, server FROM hv.members").fetchall())
    result: dict[str, str | None] = {}
    for spec in specs:
        try:
            declared = placement.column_value(settings, spec.server)
        except placement.PlacementError as exc:
            raise placement.PlacementError(f"tenants/{spec.name}.yaml: server: {exc}") from None
        result[spec.name] = placed.get(spec.name, declared)
        if result[spec.name] is not None and spec.shares:
            raise placement.PlacementError(
                f"tenants/{spec.name}.yaml: sharing agreements are served from the primary;"
                f" member {spec.name} is on server {result[spec.name]}")
    return result


def plan(
    conn: psycopg.Connection,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    settings: Settings,
    servers: placement.Connections | None = None,
) -> list[Step]:
    """What `apply` would do, in order. Reads only (on every server members are on)."""
    own = servers is None
    servers = servers or placement.Connections(settings)
    try:
        return _plan(conn, specs, catalogue, settings, servers)
    finally:
        if own:
            servers.close()


def _plan(
    conn: psycopg.Connection,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    settings: Settings,
    servers: placement.Connections,
) -> list[Step]:
    steps: list[Step] = []
    where = placements(conn, specs, settings)
    for spec in specs:
        for device in spec.devices:
            if device.model not in catalogue.models:
                raise ValueError(
                    f"tenants/{spec.name}.yaml: device {device.dev_eui}: unknown model"
                    f" '{device.model}' (see `hypervision models`)"
                )

    # 1. Device models, mirrored into the catalogue.
    known = {
        r[0]: r[1] for r in conn.execute("SELECT id, spec FROM hv.device_models").fetchall()
    }
    changed = [
        m.id for m in catalogue.models.values()
        if not _same_json(known.get(m.id), m.model_dump(mode="json"))
    ]
    if changed:
        new = sum(1 for m in changed if m not in known)
        steps.append(Step("+" if new else "~", f"device models: {new} new, {len(changed) - new}"
                          " changed", _upsert_models(catalogue, changed)))

    # 2. The platform's ingest role.
    ingest = settings.ingest_role
    if not roles.role_exists(conn, ingest):
        steps.append(Step("+", f"role {ingest} (login)", _create_role(ingest, login=True)))
    steps.append(Step("=", f"role {ingest}: password and grants",
                      _chain(_set_password(ingest, settings.ensure_role_password(ingest),
                                           inherit=False),
                             _ingest_grants(settings))))
    steps.append(Step("=", f"role {settings.api_role}: password and grants",
                      lambda conn: ensure_api_role(conn, settings)))
    steps.append(Step("=", f"role {settings.public_role}: password and grants",
                      lambda conn: ensure_public_role(conn, settings)))

    # 3. The other servers members are on: control structure, platform roles.
    for name in sorted({w for w in where.values() if w is not None}):
        steps.append(Step("=", f"server {name}: control structure, roles {ingest} and"
                               f" {settings.api_role}", _server_setup(settings, name),
                          server=name))

    # 4. Each member: roles, schema, migrations, grants (on its server); catalogue rows,
    #    devices (on the primary).
    members = {r[0]: r for r in conn.execute("SELECT slug, spec FROM hv.members").fetchall()}
    for spec in specs:
        placed = where[spec.name]
        here = conn if placed is None else servers.get(placed)
        named = placement.column_value(settings, spec.server)
        if spec.name in members and named != placed:
            to = placement.server(settings, named).name
            steps.append(Step("!", f"{spec.name}: on server"
                                   f" {placement.server(settings, placed).name}, its file names"
                                   f" {to}: run `hypervision tenants move {spec.name} --to {to}`"))
        steps.extend(_member_steps(conn, spec, settings, members.get(spec.name), here, placed))

    # 5. Sharing agreements, once every member (recipients included) has its roles.
    for spec in specs:
        for symbol, what, action in agreements.steps(conn, spec, settings, ACTOR):
            steps.append(Step(symbol, what, action))

    declared = {s.name for s in specs}
    for slug in sorted(set(members) - declared):
        steps.append(Step("=", f"member {slug}: no longer declared; its data is kept"
                               " (suspend it in its file, or offboard it explicitly)"))
    return steps


def _chain(*actions: Action) -> Action:
    def run(conn: psycopg.Connection) -> None:
        for action in actions:
            action(conn)

    return run


def _member_steps(
    conn: psycopg.Connection, spec: TenantSpec, settings: Settings, current: Any,
    here: psycopg.Connection | None = None, server: str | None = None,
) -> list[Step]:
    """The member's steps. `here` is the superuser's connection to the member's server
    (`server`; None: the primary, `conn`): roles, schema, migrations and grants go there,
    the catalogue rows to the primary."""
    here = conn if here is None else here
    on_server = settings if server is None else _on_server(settings, server)
    steps: list[Step] = []
    name = spec.name
    for kind in ("owner", "writer", "reader"):
        role = spec.role(kind)
        if not roles.role_exists(here, role):
            steps.append(Step("+", f"{name}: role {role}", _create_role(role, kind == "reader"),
                              server=server))
    reader = spec.role("reader")
    if not _schema_exists(here, spec.schema):
        steps.append(Step("+", f"{name}: schema {spec.schema}", _create_schema(spec),
                          server=server))
        pending = migrate.load(migrate.TENANT)
    else:
        pending = migrate.pending_tenant(here, spec.schema)
    for m in pending:
        steps.append(Step("+", f"{name}: migration {m.version:04d}_{m.name}", server=server))
    if pending:
        steps[-1].action = _migrate_member(spec)
    steps.append(Step("=", f"{name}: grants and reader password",
                      _chain(_set_password(reader, settings.ensure_role_password(reader)),
                             lambda conn: roles.limit_reader(conn, reader, settings),
                             _member_grants(spec, on_server)), server=server))

    row = _member_row(spec)
    if current is None:
        steps.append(Step("+", f"{name}: member '{spec.identity.name}'",
                          _upsert_member(spec, server)))
    elif not _same_json(current[1], row["spec"].obj):
        # Name the top-level fields that changed (identity, users, analytics, alerts...).
        old, new = current[1] or {}, row["spec"].obj
        changed = sorted(k for k in old.keys() | new.keys()
                         if not _same_json(old.get(k), new.get(k)))
        steps.append(Step("~", f"{name}: member details ({', '.join(changed)})",
                          _upsert_member(spec), before={k: old.get(k) for k in changed},
                          after={k: new.get(k) for k in changed}))
    for line in accounts.sync_users(conn, spec, dry_run=True):
        symbol, _, what = line.partition(" ")  # "+ alpha: account ..." already names the member
        steps.append(Step(symbol, what))
    if steps[-1].what.startswith(f"{name}: ") and steps[-1].action is None \
            and steps[-1].symbol in "+~-":
        def sync_users(conn: psycopg.Connection) -> None:
            accounts.sync_users(conn, spec, accounts.Who(ACTOR))

        steps[-1].action = sync_users

    existing = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT dev_eui, member_slug, model_id, name, variables, spec, active"
            " FROM hv.devices WHERE member_slug = %s OR dev_eui = ANY(%s)",
            (name, [d.dev_eui for d in spec.devices]),
        ).fetchall()
    }
    rows = _device_rows(spec)
    to_write = []
    for r in rows:
        cur = existing.get(r["dev_eui"])
        if cur is None:
            steps.append(Step("+", f"{name}: device {r['dev_eui']} {r['name']} ({r['model']})"))
            to_write.append(r)
        elif (cur[0], cur[1], cur[2], cur[5]) != (name, r["model"], r["name"], True) or not (
            _same_json(cur[3], r["variables"]) and _same_json(cur[4], r["spec"])
        ):
            steps.append(Step("~", f"{name}: device {r['dev_eui']} {r['name']}"))
            to_write.append(r)
    if to_write:
        steps[-1].action = _upsert_devices(to_write)
    declared = {r["dev_eui"] for r in rows}
    gone = [eui for eui, cur in existing.items()
            if cur[0] == name and cur[5] and eui not in declared]
    for eui in gone:
        steps.append(Step("-", f"{name}: device {eui} deactivated (its data is kept)"))
    if gone:
        steps[-1].action = _deactivate_devices(gone)
    if not to_write and not gone and current is not None:
        steps.append(Step("=", f"{name}: {len(rows)} devices up to date"))
    # The member's analytics settings (depot, calendars, thresholds) and devices, copied
    # into its schema now rather than at the next refresh: a depot declared in the file
    # plans rounds as soon as the file is applied. Writes only what changed.
    if server is None:
        # A member on another server gets its copy once the catalogue rows are committed
        # (`apply`, at the end).
        steps.append(Step("=", f"{name}: analytics settings and devices in its schema",
                          lambda conn: _copy_analytics(conn, name)))
    return steps


def _copy_analytics(conn: psycopg.Connection, slug: str) -> None:
    analytics_members.sync(conn, analytics_members.member(conn, slug))


def apply(
    conn: psycopg.Connection,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    settings: Settings,
    log: Callable[[str], None] = print,
    actor: str = ACTOR,
) -> list[Step]:
    """Recompute the plan and run it in one transaction; each member whose declaration
    changed gets an audit entry listing the changes, with the changed fields of its
    details (analytics settings and alert rules included) before and after."""
    servers = placement.Connections(settings)
    try:
        steps = plan(conn, specs, catalogue, settings, servers)
        # The other servers first, each in one transaction: a member's schema and roles
        # exist before the catalogue names it. Every step is idempotent, so an apply that
        # stops between two servers is finished by the next one.
        for name in sorted({s.server for s in steps if s.server is not None}):
            remote = servers.get(name)
            with remote.transaction():
                for step in steps:
                    if step.server == name:
                        if step.symbol != "=":
                            log(f"{step} (server {name})")
                        if step.action is not None:
                            step.action(remote)
    finally:
        servers.close()
    with conn.transaction():
        for step in steps:
            if step.server is not None:
                continue
            if step.symbol != "=":
                log(str(step))
            if step.action is not None:
                step.action(conn)
        for spec in specs:
            mine = [s for s in steps
                    if s.symbol in "+~-" and s.what.startswith(f"{spec.name}: ")]
            if mine:
                details = next((s for s in mine if s.before is not None), None)
                audit.record(conn, actor=actor, member=spec.name, action="tenant.apply",
                             target=f"tenants/{spec.name}.yaml",
                             params={"changes": [str(s) for s in mine]}, source="cli",
                             before=details.before if details else None,
                             after=details.after if details else None)
    # Members on other servers: their analytics copy, once the catalogue (on the primary)
    # holds their devices, committed above.
    placed = conn.execute(
        "SELECT slug, server FROM hv.members WHERE server IS NOT NULL AND slug = ANY(%s)"
        " ORDER BY slug", ([spec.name for spec in specs],)).fetchall()
    if placed:
        with placement.Connections(settings, conn) as servers:
            for slug, server in placed:
                analytics_members.sync(conn, analytics_members.member(conn, slug),
                                       servers.get(server))
    # Each role's password to the processes that connect with it, and no other.
    role_secrets.publish(settings)
    return steps
