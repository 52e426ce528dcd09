"""Provisioning: each member's Superset access, made from its tenant file and the templates.

For each member, idempotently:
1. a database connection `hv_<slug>` that logs in with the member's read-only PostgreSQL
   role `<slug>_reader` (never SQL Lab, never DML): whatever a chart asks, PostgreSQL only
   lets it read the member's own schema;
2. a Superset role `hv_member_<slug>` holding one permission: access to that connection;
3. its dashboards, made from the member-scope templates under dashboards/ that its devices
   call for, imported as bundles (databases, datasets, charts, dashboards, each through its
   own import endpoint with overwrite, so a changed template updates charts and datasets
   too), published and restricted to the member's role (dashboard RBAC);
4. its named users (tenant file, `users:`): Superset accounts with the roles `Gamma` and
   `hv_member_<slug>`, plus `hv_operator` for the syndicate's users flagged `operator`,
   and no password anyone knows (they sign in through the platform, which sets their
   roles again at each sign-in); users that were provisioned and are no longer declared
   are deactivated, never deleted;
5. objects a template no longer produces are deleted from Superset (hv.superset_objects
   records what each apply made).

Then the operator: a connection `hv_operator` logging in as `hv_operator_reader`, which
reads only the hv_operator views (counts per member), a role `hv_operator` and the
operator-scope dashboards.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from hypervision import placement, roles
from hypervision.db import connect_admin
from hypervision.roles import OPERATOR_READER, member_role
from hypervision.settings import Settings
from hypervision.superset import server
from hypervision.superset.bundle import (
    KINDS,
    PASSWORD_MASK,
    Bundle,
    Column,
    Target,
    render,
)
from hypervision.superset.client import Client, SupersetError
from hypervision.superset.templates import DashboardTemplate, TemplateSet, load
from hypervision.tenancy.spec import TenantSpec, User

Log = Callable[[str], None]

GAMMA = "Gamma"
PUBLIC = "Public"
OPERATOR = "operator"
ADMIN = "admin"
OPERATOR_ROLE = "hv_operator"
OPERATOR_SCHEMA = "hv_operator"


def member_role_name(slug: str) -> str:
    """The Superset role of a member's users."""
    return f"hv_member_{slug}"


def database_name(slug: str) -> str:
    return f"hv_{slug}"


def admin_client(settings: Settings) -> Client:
    return Client(server.url(settings), ADMIN, server.admin_password(settings))


@dataclass(frozen=True)
class Applied:
    """What one apply did for one target, for the command's summary and for tests."""

    target: str
    dashboards: dict[str, int]  # template name -> Superset id
    users: list[str]
    deleted: int


# Reading the platform database ----------------------------------------------------------


def _columns(conn: psycopg.Connection, schema: str) -> dict[str, list[Column]]:
    """Every table and view of `schema` with its columns, in order, as Superset types."""
    rows = conn.execute(
        """
        SELECT table_name, column_name, upper(data_type)
        FROM information_schema.columns
        WHERE table_schema = %s
        ORDER BY table_name, ordinal_position
        """,
        (schema,),
    ).fetchall()
    found: dict[str, list[Column]] = {}
    for table, column, data_type in rows:
        found.setdefault(table, []).append(Column(column, data_type))
    return found


def _categories(conn: psycopg.Connection, slug: str) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT dm.category FROM hv.devices d JOIN hv.device_models dm"
        " ON dm.id = d.model_id WHERE d.member_slug = %s AND d.active",
        (slug,),
    ).fetchall()
    return {r[0] for r in rows}


def _recorded(conn: psycopg.Connection, key: str) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        "SELECT kind, uuid::text, name FROM hv.superset_objects WHERE member_slug = %s", (key,)
    ).fetchall()
    return {(kind, value): name for kind, value, name in rows}


def _applied_digest(conn: psycopg.Connection, key: str) -> str | None:
    row = conn.execute("SELECT digest FROM hv.superset_targets WHERE target_key = %s",
                       (key,)).fetchone()
    return row[0] if row else None


def _record(conn: psycopg.Connection, key: str, bundle: Bundle, digest: str) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO hv.superset_targets (target_key, digest) VALUES (%s, %s)"
            " ON CONFLICT (target_key) DO UPDATE SET digest = EXCLUDED.digest,"
            " applied_at = now()", (key, digest))
        conn.execute("DELETE FROM hv.superset_objects WHERE member_slug = %s", (key,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO hv.superset_objects (member_slug, kind, uuid, template, name)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(key, o.kind, o.uuid, o.template, o.name) for o in bundle.objects],
            )


def _sqlalchemy_uri(settings: Settings, role: str, server: str | None = None) -> str:
    """Superset's connection as `role` to the database server `server` (None: the primary;
    hypervision.placement), or to its read replica when the servers file declares one:
    dashboards only read, and a replica takes their queries off the server that ingests.
    With the TLS mode declared for it, if any. A replica changed in the file changes this
    URI, hence the bundle's digest: the next apply imports the connection again."""
    where = placement.server(settings, server).for_dashboards
    query = f"?sslmode={where.sslmode}" if where.sslmode else ""
    return (f"postgresql+psycopg2://{role}:{PASSWORD_MASK}@{where.host}:{where.port}"
            f"/{where.database}{query}")


# Superset objects -----------------------------------------------------------------------


def _one(client: Client, resource: str, **equals: Any) -> dict[str, Any] | None:
    rows = client.find(resource, **equals)
    return rows[0] if rows else None


def role_id(client: Client, name: str) -> int:
    """The id of a Superset role, created if missing."""
    found = _one(client, "security/roles", name=name)
    if found is not None:
        return int(found["id"])
    return int(client.post("/api/v1/security/roles/", {"name": name})["id"])


def _permission_view_id(client: Client, permission: str, resource: str) -> int:
    """The id of (permission, resource), e.g. ('database_access', '[hv_alpha].(id:3)')."""
    view = _one(client, "security/resources", name=resource)
    perm = _one(client, "security/permissions", name=permission)
    if view is None or perm is None:
        raise SupersetError(f"Superset has no permission {permission} on {resource}")
    rows = client.find("security/permissions-resources", filters=[
        ("view_menu", "rel_o_m", view["id"]), ("permission", "rel_o_m", perm["id"])])
    if not rows:
        raise SupersetError(f"Superset has no permission {permission} on {resource}")
    return int(rows[0]["id"])


def _grant_database(client: Client, role: int, database: str) -> None:
    """Make `database_access` on one connection the role's only permission."""
    row = _one(client, "database", database_name=database)
    if row is None:
        raise SupersetError(f"database connection {database} was not imported")
    permission = _permission_view_id(client, "database_access",
                                     f"[{database}].(id:{row['id']})")
    client.post(f"/api/v1/security/roles/{role}/permissions",
                {"permission_view_menu_ids": [permission]})


def _translate_login_page(client: Client) -> None:
    """Let anonymous visitors load the French language pack: without it the login page,
    the only page they see, stays in English. It is the Public role's only permission."""
    role = role_id(client, PUBLIC)
    permission = _permission_view_id(client, "can_language_pack", "Superset")
    client.post(f"/api/v1/security/roles/{role}/permissions",
                {"permission_view_menu_ids": [permission]})


def _import(client: Client, bundle: Bundle, password: str) -> None:
    """Databases, datasets, charts, then dashboards, each overwritten in place."""
    for kind in KINDS:
        passwords = {bundle.database_file: password} if kind == "database" else None
        client.import_bundle(kind, bundle.zip(kind), passwords=passwords, overwrite=True)


class DashboardIds:
    """Dashboard ids by uuid, listed once per apply (one request per page, rather than
    one per dashboard) and listed again after an import created new ones."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.known: dict[str, int] = {}
        self.reload()

    def reload(self) -> None:
        rows = self.client.find("dashboard", columns=["id", "uuid"])
        self.known = {str(row["uuid"]): int(row["id"]) for row in rows}

    def of(self, bundle: Bundle) -> dict[str, int | None]:
        """template -> the id of its dashboard in Superset, None where there is none."""
        return {template: self.known.get(value) for template, value in bundle.dashboards.items()}


def _restrict_dashboards(client: Client, ids: dict[str, int | None],
                         role_ids: list[int]) -> dict[str, int]:
    """Publish each dashboard to the given roles only; returns template -> dashboard id."""
    restricted: dict[str, int] = {}
    for template, found in ids.items():
        if found is None:
            raise SupersetError(f"dashboard {template} was not imported")
        client.put(f"/api/v1/dashboard/{found}", {"roles": role_ids, "published": True})
        restricted[template] = found
    return restricted


def _delete_stale(client: Client, previous: dict[tuple[str, str], str], bundle: Bundle,
                  log: Log) -> int:
    """Delete what an earlier apply made and this one no longer does, dashboards first."""
    current = {(o.kind, o.uuid) for o in bundle.objects}
    deleted = 0
    for kind in ("dashboard", "chart", "dataset", "database"):
        for (was_kind, value), name in sorted(previous.items()):
            if was_kind != kind or (kind, value) in current:
                continue
            row = _one(client, kind, uuid=value) if kind != "database" else None
            if row is None:
                continue
            try:
                client.delete(f"/api/v1/{kind}/{row['id']}")
            except SupersetError as exc:
                # A member's own chart may still use an old dataset: keep it then.
                log(f"! {kind} {name}: not deleted ({exc})")
                continue
            log(f"- {kind} {name}")
            deleted += 1
    return deleted


def _apply_target(client: Client, conn: psycopg.Connection, target: Target,
                  templates: list[DashboardTemplate], template_set: TemplateSet, password: str,
                  role_ids: list[int], dashboard_ids: DashboardIds, log: Log,
                  force: bool, schema_conn: psycopg.Connection | None = None,
                  ) -> tuple[dict[str, int], int]:
    """Import the target's bundle, restrict its dashboards to `role_ids`, delete what is
    stale, record what now exists; returns (template -> dashboard id, deleted count).

    When nothing changed since the last apply (same digest) and every dashboard is still
    there, nothing is imported: re-applying an unchanged member costs a few reads. The
    datasets' columns are read where the schema is (`schema_conn`, default `conn`).
    """
    bundle = render(target, templates, template_set,
                    _columns(schema_conn or conn, target.schema))
    digest = bundle.digest(password, *map(str, sorted(role_ids)))
    existing = dashboard_ids.of(bundle)
    if (not force and _applied_digest(conn, target.key) == digest
            and all(found is not None for found in existing.values())):
        return {t: i for t, i in existing.items() if i is not None}, 0
    previous = _recorded(conn, target.key)
    _import(client, bundle, password)
    dashboard_ids.reload()
    dashboards = _restrict_dashboards(client, dashboard_ids.of(bundle), role_ids)
    deleted = _delete_stale(client, previous, bundle, log)
    _record(conn, target.key, bundle, digest)
    log(f"~ {target.key or OPERATOR}: imported {len(bundle.objects)} objects")
    return dashboards, deleted


# Users ----------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().partition(" ")
    return first or name, last or "-"


def ensure_user(client: Client, username: str, email: str, name: str, role_ids: list[int],
                password: str | None = None, active: bool = True) -> int:
    """Create or update a Superset account. A new account without a given password gets a
    random one nobody knows: people sign in through the platform, never with a Superset
    password (hypervision.superset.signin); only the provisioning `admin` has one."""
    first, last = _split_name(name)
    body: dict[str, Any] = {"first_name": first, "last_name": last, "email": email,
                            "roles": sorted(set(role_ids)), "active": active}
    if password is not None:
        body["password"] = password
    found = _one(client, "security/users", username=username)
    if found is None:
        body |= {"username": username,
                 "password": password or secrets.token_urlsafe(24)}
        return int(client.post("/api/v1/security/users/", body)["id"])
    client.put(f"/api/v1/security/users/{found['id']}", body)
    return int(found["id"])


def set_password(settings: Settings, username: str, password: str) -> None:
    """A new password for a Superset account: the provisioning `admin` only has one
    (infra/superset/platform_auth.py refuses every other account's password)."""
    with admin_client(settings) as client:
        found = _one(client, "security/users", username=username)
        if found is None:
            raise SupersetError(f"no Superset user {username!r}")
        client.put(f"/api/v1/security/users/{found['id']}", {"password": password})


def user_roles(spec: TenantSpec, user: User, role_ids: list[int],
               operator_role: int) -> list[int]:
    """A declared user's Superset roles: the member's, plus the operator's view for the
    syndicate's users flagged `operator: true` only (not every user of the syndicate)."""
    if spec.identity.kind == "syndicate" and user.operator:
        return [*role_ids, operator_role]
    return list(role_ids)


def _apply_users(client: Client, conn: psycopg.Connection, spec: TenantSpec,
                 role_ids: list[int], operator_role: int, log: Log) -> list[str]:
    """The member's declared users, active unless the member is suspended; the ones no
    longer declared are deactivated."""
    key = f"users:{spec.name}"
    declared = []
    for user in spec.users:
        username = str(user.email).lower()
        ensure_user(client, username, username, user.name,
                    user_roles(spec, user, role_ids, operator_role), active=not spec.suspended)
        declared.append(username)
    previous = {name for _, name in _recorded_users(conn, key)}
    for username in sorted(previous - set(declared)):
        found = _one(client, "security/users", username=username)
        if found is not None and found["active"]:
            client.put(f"/api/v1/security/users/{found['id']}", {"active": False})
            log(f"- {spec.name}: user {username} deactivated")
    with conn.transaction():
        conn.execute("DELETE FROM hv.superset_users WHERE member_key = %s", (key,))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO hv.superset_users (member_key, username)"
                            " VALUES (%s, %s)", [(key, u) for u in declared])
    return declared


def _recorded_users(conn: psycopg.Connection, key: str) -> list[tuple[str, str]]:
    return conn.execute("SELECT member_key, username FROM hv.superset_users"
                        " WHERE member_key = %s", (key,)).fetchall()


# Apply ----------------------------------------------------------------------------------


def _ensure_operator_login(conn: psycopg.Connection, settings: Settings) -> None:
    roles.ensure_operator_login(conn, settings)


def member_target(settings: Settings, spec: TenantSpec, server: str | None = None) -> Target:
    """A member's Superset database and dashboards; `server`: where its schema is."""
    return Target(
        key=spec.name, title=spec.identity.name, scope="member",
        database_name=database_name(spec.name), schema=spec.schema,
        login_role=member_role(spec.name, "reader"),
        sqlalchemy_uri=_sqlalchemy_uri(settings, member_role(spec.name, "reader"), server),
        dashboard_slug_prefix=f"{spec.name}-",
    )


def operator_target(settings: Settings) -> Target:
    return Target(
        key="", title="vue du syndicat", scope="operator", database_name="hv_operator",
        schema=OPERATOR_SCHEMA, login_role=OPERATOR_READER,
        sqlalchemy_uri=_sqlalchemy_uri(settings, OPERATOR_READER),
        dashboard_slug_prefix="",
    )


def apply(settings: Settings, specs: Sequence[TenantSpec], log: Log = print,
          template_set: TemplateSet | None = None, force: bool = False) -> list[Applied]:
    """Provision Superset for every member in `specs`, then the operator view.

    The members must have been applied first (`tenants apply`): their schemas, reader roles
    and devices are read from the database. `force` imports every bundle again, even
    unchanged ones (after objects were edited or deleted in Superset by hand).
    """
    template_set = template_set or load()
    results: list[Applied] = []
    with connect_admin(settings) as conn, admin_client(settings) as client, \
            placement.Connections(settings, conn) as servers:
        gamma = role_id(client, GAMMA)
        operator_role = role_id(client, OPERATOR_ROLE)
        _ensure_operator_login(conn, settings)
        _translate_login_page(client)
        dashboard_ids = DashboardIds(client)
        for spec in specs:
            found = conn.execute("SELECT server FROM hv.members WHERE slug = %s",
                                 (spec.name,)).fetchone()
            if found is None:
                raise ValueError(f"member {spec.name} is not applied yet: run `tenants apply`")
            target = member_target(settings, spec, found[0])
            categories = _categories(conn, spec.name)
            templates = [t for t in template_set.for_scope("member")
                         if not t.categories or categories & set(t.categories)]
            role = role_id(client, member_role_name(spec.name))
            dashboards, deleted = _apply_target(
                client, conn, target, templates, template_set,
                settings.role_password(target.login_role), [role], dashboard_ids, log, force,
                schema_conn=servers.get(found[0]))
            _grant_database(client, role, target.database_name)
            users = _apply_users(client, conn, spec, [gamma, role], operator_role, log)
            log(f"= {spec.name}: {len(dashboards)} dashboards ({', '.join(dashboards)}),"
                f" {len(users)} users")
            results.append(Applied(spec.name, dashboards, users, deleted))

        target = operator_target(settings)
        dashboards, deleted = _apply_target(
            client, conn, target, template_set.for_scope("operator"), template_set,
            settings.role_password(OPERATOR_READER), [operator_role], dashboard_ids, log,
            force)
        _grant_database(client, operator_role, target.database_name)
        log(f"= operator: {len(dashboards)} dashboards ({', '.join(dashboards)})")
        results.append(Applied(OPERATOR, dashboards, [], deleted))
    return results


def apply_if_running(settings: Settings, specs: Sequence[TenantSpec],
                     log: Log = print) -> bool:
    """What `tenants apply` calls once the members are applied: provision Superset if it
    runs (False, and a hint, if it does not)."""
    if not server.status(settings):
        log("= Superset is not running: `hypervision superset apply` once it is started")
        return False
    apply(settings, specs, log=log)
    return True
