"""Desired state (tenant files, device catalogue) versus the database, as ordered steps.

`plan()` reads only and returns the steps with a symbol each (`+` create, `~` change,
`=` unchanged, `-` deactivate). `apply()` computes the plan again and runs it; every step
is idempotent, so applying twice changes nothing the second time. Removing a device or a
member from the files deactivates it; data is never deleted here.

Roles per member (see BRIEF.md, "Tenancy"):
- `<slug>_owner` (no login) owns the schema and its tables;
- `<slug>_writer` (no login) may insert raw uplinks and measurements and track downlinks;
  the platform's ingest login role is a member of every writer role and switches with
  SET ROLE;
- `<slug>_reader` (login, password derived from HV_SECRET_KEY) reads the member's tables
  only: dashboards and exports connect with it, so isolation holds in the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision import accounts, audit, migrate
from hypervision.api.db import ensure_api_role, grant_alert_changes, grant_downlink_requests
from hypervision.public.access import ensure_public_role
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue

Action = Callable[[psycopg.Connection], None]
ACTOR = "system:tenancy"


@dataclass
class Step:
    symbol: str
    what: str
    action: Action | None = field(default=None, repr=False)
    # For a change of the member's declaration: the changed fields, before and after,
    # written to the audit trail with the change.
    before: dict[str, Any] | None = field(default=None, repr=False)
    after: dict[str, Any] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.symbol} {self.what}"


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def _create_role(role: str, login: bool) -> Action:
    def run(conn: psycopg.Connection) -> None:
        if not _role_exists(conn, role):
            conn.execute(sql.SQL("CREATE ROLE {} {}").format(
                sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")))

    return run


def _set_password(role: str, password: str, inherit: bool = True) -> Action:
    """Set a login role's password. NOINHERIT for the ingest role: it holds no member's
    privileges until it switches to that member's writer role with SET ROLE."""

    def run(conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN {} PASSWORD {}").format(
                sql.Identifier(role), sql.SQL("INHERIT" if inherit else "NOINHERIT"),
                sql.Literal(password),
            )
        )

    return run


def _ingest_grants(settings: Settings) -> Action:
    """The ingest role reads the registry and writes dead letters and outcome counters."""

    def run(conn: psycopg.Connection) -> None:
        ingest = sql.Identifier(settings.ingest_role)
        database = sql.Identifier(settings.pg_database)
        for statement in (
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA hv TO {role}",
            "GRANT SELECT ON hv.staging_uplinks, hv.staging_measurements, hv.staging_events"
            " TO {role}",
            "GRANT SELECT ON hv.members, hv.devices, hv.device_models TO {role}",
            "GRANT SELECT, INSERT ON hv.dead_letters TO {role}",
            "GRANT USAGE ON SEQUENCE hv.dead_letters_id_seq TO {role}",
            "GRANT SELECT, INSERT, UPDATE ON hv.ingest_outcomes TO {role}",
        ):
            conn.execute(sql.SQL(statement).format(db=database, role=ingest))  # type: ignore[arg-type]

    return run


def _member_grants(spec: TenantSpec, settings: Settings) -> Action:
    def run(conn: psycopg.Connection) -> None:
        ids = {
            "schema": sql.Identifier(spec.schema),
            "owner": sql.Identifier(spec.role("owner")),
            "writer": sql.Identifier(spec.role("writer")),
            "reader": sql.Identifier(spec.role("reader")),
            "ingest": sql.Identifier(settings.ingest_role),
            "db": sql.Identifier(settings.pg_database),
        }
        for statement in (
            "GRANT CONNECT ON DATABASE {db} TO {reader}",
            "GRANT USAGE ON SCHEMA {schema} TO {writer}, {reader}",
            "GRANT SELECT, INSERT ON {schema}.uplinks, {schema}.measurements,"
            " {schema}.device_events TO {writer}",
            "GRANT SELECT, INSERT, UPDATE ON {schema}.device_state TO {writer}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
            " GRANT SELECT ON TABLES TO {reader}",
            "GRANT {writer} TO {ingest}",
        ):
            conn.execute(sql.SQL(statement).format(**ids))  # type: ignore[arg-type]
        # The API acknowledges and closes alerts, and records the downlinks its callers
        # send: column privileges on those two tables, nothing else of the schema.
        grant_alert_changes(conn, settings, spec.schema)
        grant_downlink_requests(conn, settings, spec.schema)

    return run


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


def _upsert_member(spec: TenantSpec) -> Action:
    def run(conn: psycopg.Connection) -> None:
        conn.execute(
            """
            INSERT INTO hv.members (slug, name, kind, siren, schema_name, spec, suspended)
            VALUES (%(slug)s, %(name)s, %(kind)s, %(siren)s, %(schema)s, %(spec)s, %(suspended)s)
            ON CONFLICT (slug) DO UPDATE SET
                name = EXCLUDED.name, kind = EXCLUDED.kind, siren = EXCLUDED.siren,
                spec = EXCLUDED.spec, suspended = EXCLUDED.suspended, updated_at = now()
            """,
            _member_row(spec),
        )

    return run


def _member_row(spec: TenantSpec) -> dict[str, Any]:
    body = spec.model_dump(mode="json", exclude={"devices"})
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


def plan(
    conn: psycopg.Connection,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    settings: Settings,
) -> list[Step]:
    """What `apply` would do, in order. Reads only."""
    steps: list[Step] = []
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
    if not _role_exists(conn, ingest):
        steps.append(Step("+", f"role {ingest} (login)", _create_role(ingest, login=True)))
    steps.append(Step("=", f"role {ingest}: password and grants",
                      _chain(_set_password(ingest, settings.role_password(ingest), inherit=False),
                             _ingest_grants(settings))))
    steps.append(Step("=", f"role {settings.api_role}: password and grants",
                      lambda conn: ensure_api_role(conn, settings)))
    steps.append(Step("=", f"role {settings.public_role}: password and grants",
                      lambda conn: ensure_public_role(conn, settings)))

    # 3. Each member: roles, schema, migrations, grants, catalogue rows, devices.
    members = {r[0]: r for r in conn.execute("SELECT slug, spec FROM hv.members").fetchall()}
    for spec in specs:
        steps.extend(_member_steps(conn, spec, settings, members.get(spec.name)))

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
    conn: psycopg.Connection, spec: TenantSpec, settings: Settings, current: Any
) -> list[Step]:
    steps: list[Step] = []
    name = spec.name
    for kind in ("owner", "writer", "reader"):
        role = spec.role(kind)  # type: ignore[arg-type]
        if not _role_exists(conn, role):
            steps.append(Step("+", f"{name}: role {role}", _create_role(role, kind == "reader")))
    reader = spec.role("reader")
    if not _schema_exists(conn, spec.schema):
        steps.append(Step("+", f"{name}: schema {spec.schema}", _create_schema(spec)))
        pending = migrate.load(migrate.TENANT)
    else:
        pending = migrate.pending_tenant(conn, spec.schema)
    for m in pending:
        steps.append(Step("+", f"{name}: migration {m.version:04d}_{m.name}"))
    if pending:
        steps[-1].action = _migrate_member(spec)
    steps.append(Step("=", f"{name}: grants and reader password",
                      _chain(_set_password(reader, settings.role_password(reader)),
                             _member_grants(spec, settings))))

    row = _member_row(spec)
    if current is None:
        steps.append(Step("+", f"{name}: member '{spec.identity.name}'", _upsert_member(spec)))
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
        steps[-1].action = lambda conn: accounts.sync_users(conn, spec, accounts.Who(ACTOR))

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
    return steps


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
    steps = plan(conn, specs, catalogue, settings)
    with conn.transaction():
        for step in steps:
            if step.symbol != "=":
                log(str(step))
            if step.action is not None:
                step.action(conn)
        for spec in specs:
            mine = [s for s in steps
                    if s.symbol != "=" and s.what.startswith(f"{spec.name}: ")]
            if mine:
                details = next((s for s in mine if s.before is not None), None)
                audit.record(conn, actor=actor, member=spec.name, action="tenant.apply",
                             target=f"tenants/{spec.name}.yaml",
                             params={"changes": [str(s) for s in mine]}, source="cli",
                             before=details.before if details else None,
                             after=details.after if details else None)
    return steps
