"""The platform's PostgreSQL roles: their names, and the statements that create them.

Every other module asks here for a role's name; none spells one. A member's schema is
owned by `<slug>_owner`, written by the pipeline as `<slug>_writer` and read (API,
dashboards, exports) as `<slug>_reader`. The platform's own login roles are named by
settings (HV_INGEST_ROLE, HV_API_ROLE, HV_PUBLIC_ROLE, HV_SUPERSET_DB_ROLE), with the
defaults `hv_ingest`, `hv_api`, `hv_public`, `hv_superset`. See docs/architecture.md.

This module sits beside hypervision.settings, below the pipeline (ingest) and the control
plane: it imports nothing else of either.
"""

from __future__ import annotations

from typing import Literal

import psycopg
from psycopg import sql

from hypervision.settings import Settings

RoleKind = Literal["owner", "writer", "reader"]
MEMBER_ROLE_KINDS: tuple[RoleKind, ...] = ("owner", "writer", "reader")
# Roles created by the control migrations: the operator's dashboards read non-personal
# aggregates as the first; login roles that may append to the audit trail join the second.
OPERATOR_READER = "hv_operator_reader"
AUDIT_WRITER = "hv_audit_writer"


def member_role(slug: str, kind: RoleKind) -> str:
    """The database role of a member: `<slug>_owner`, `<slug>_writer` or `<slug>_reader`."""
    return f"{slug}_{kind}"


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


# Privileges given column by column ---------------------------------------------------------

# The content columns of hv.audit_log a writer may set; everything else is set by the
# chaining trigger (hypervision.audit).
AUDIT_WRITABLE_COLUMNS = ("actor", "member_slug", "action", "target", "params", "rows",
                          "source", "remote_addr", "request_id", "before", "after")
# The columns of a member's `downlinks` a request sets (hypervision.chirpstack.downlinks);
# the others keep their defaults (status 'queued', times now()) until tracking fills
# them. The API role may insert these and nothing more.
DOWNLINK_REQUEST_COLUMNS = ("queue_item_id", "dev_eui", "model_id", "command", "params", "f_port",
                            "data", "confirmed", "requested_by")


# The platform's login roles -----------------------------------------------------------------


def grant_audit_writer(conn: psycopg.Connection, role: str, *, inherit: bool = True) -> None:
    """Let a login role append audit entries (run as the superuser).

    INHERIT roles become members of `hv_audit_writer`; NOINHERIT roles (the ingest role,
    which switches roles with SET ROLE) get the same column privileges directly.
    """
    ident = sql.Identifier(role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA hv TO {}").format(ident))
    if inherit:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(AUDIT_WRITER), ident))
        return
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_WRITABLE_COLUMNS)
    conn.execute(sql.SQL("GRANT INSERT ({}), SELECT (id) ON hv.audit_log TO {}").format(
        columns, ident))


def ensure_api_role(conn: psycopg.Connection, settings: Settings) -> None:
    """Create or update the API's login role and its grants (run as the superuser by
    `tenants apply`; idempotent). It reads the catalogue, manages accounts, tokens and
    grants, appends to and reads the audit trail, and nothing of any member's schema."""
    role = sql.Identifier(settings.api_role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                          (settings.api_role,)).fetchone()
    if exists is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN INHERIT PASSWORD {}").format(
        role, sql.Literal(settings.ensure_role_password(settings.api_role))))
    for statement in (
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "GRANT USAGE ON SCHEMA hv TO {role}",
        "GRANT SELECT ON hv.members, hv.devices, hv.device_models, hv.dead_letters,"
        " hv.ingest_outcomes, hv.storage_usage, hv.audit_log TO {role}",
        # The console: the chain head (audit verification), the gateways (operators'
        # page) and the member's dashboards in Superset (links on the home page).
        "GRANT SELECT ON hv.audit_head, hv.gateways, hv.superset_objects TO {role}",
        # Sharing agreements (hypervision.sharing): listed to both members, delivery logs.
        "GRANT SELECT ON hv.share_agreements, hv.share_deliveries TO {role}",
        # The syndicate's incident register, read-only (api/routes/incidents.py).
        "GRANT SELECT ON hv.incidents, hv.incident_filings TO {role}",
        # UPDATE of the columns the API changes, nothing else (no e-mail, member, token
        # hash, nor creation stamp); every change is audited by the database as well
        # (migration 0301).
        "REVOKE UPDATE ON hv.accounts, hv.api_tokens, hv.access_grants FROM {role}",
        "GRANT SELECT, INSERT ON hv.accounts, hv.api_tokens, hv.access_grants TO {role}",
        "GRANT UPDATE (name, rights, operator, declared, active, password_hash, updated_at,"
        " mfa_required, sso_subject, totp_secret, totp_enrolled_at, totp_last_step)"
        " ON hv.accounts TO {role}",
        "GRANT UPDATE (last_used_at, revoked_at, revoked_by) ON hv.api_tokens TO {role}",
        "GRANT UPDATE (revoked_at, revoked_by) ON hv.access_grants TO {role}",
        "GRANT USAGE ON SEQUENCE hv.accounts_id_seq, hv.api_tokens_id_seq,"
        " hv.access_grants_id_seq TO {role}",
        # Sign-in (hypervision.signin, mfa, sso, superset.signin).
        "GRANT SELECT, INSERT, UPDATE, DELETE ON hv.recovery_codes, hv.auth_challenges,"
        " hv.sso_requests, hv.sso_sessions, hv.superset_codes TO {role}",
        "GRANT USAGE ON SEQUENCE hv.recovery_codes_id_seq, hv.auth_challenges_id_seq TO {role}",
    ):
        conn.execute(sql.SQL(statement).format(
            db=sql.Identifier(settings.pg_database), role=role))
    grant_audit_writer(conn, settings.api_role)


# The columns a person changes when acknowledging or closing an alert
# (hypervision.alerts.lifecycle); the API role may update these and read only id and state.
ALERT_CHANGE_COLUMNS = ("state", "acknowledged_at", "acknowledged_by", "closed_at", "closed_by",
                        "close_reason")


def grant_alert_changes(conn: psycopg.Connection, settings: Settings, schema: str) -> None:
    """Let the API role acknowledge and close one member's alerts (run as the superuser by
    `tenants apply`, for every member; idempotent).

    Only the member's owner may write its tables, and the reader role stays read-only, so
    the API role gets column privileges on the `alerts` table and nothing else of the
    schema: UPDATE of the columns a person changes, SELECT of `id` and `state` (what the
    conditional UPDATE needs). It cannot read an alert's content, nor any other table.
    """
    _grant_columns(conn, settings, schema, "alerts",
                   {"SELECT": ("id", "state"), "UPDATE": ALERT_CHANGE_COLUMNS})


def grant_downlink_requests(conn: psycopg.Connection, settings: Settings, schema: str) -> None:
    """Let the API role record the downlinks its callers send to one member's devices (run
    as the superuser by `tenants apply`, for every member; idempotent).

    INSERT of the columns a request sets (hypervision.chirpstack.downlinks.REQUEST_COLUMNS)
    on the `downlinks` table, and nothing else: it cannot read downlinks (listing them goes
    through the member's reader role), nor change their state (`status`, `sent_at`,
    `acked_at`... are the tracking's, as the member's writer role), nor touch any other
    table of the schema.
    """
    _grant_columns(conn, settings, schema, "downlinks", {"INSERT": DOWNLINK_REQUEST_COLUMNS})


def _grant_columns(conn: psycopg.Connection, settings: Settings, schema: str, table: str,
                   privileges: dict[str, tuple[str, ...]]) -> None:
    """GRANT the API role USAGE on the schema and these column privileges on one of its
    tables (nothing when the table does not exist yet: an older member schema)."""
    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',)).fetchone() == (None,):
        return
    role = sql.Identifier(settings.api_role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
    conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(
        sql.SQL(", ").join(
            sql.SQL("{} ({})").format(sql.SQL(privilege),
                                      sql.SQL(", ").join(map(sql.Identifier, columns)))
            for privilege, columns in privileges.items()),
        sql.Identifier(schema, table), role))


PUBLIC_VIEWS = ("hv.public_devices", "hv.public_members")


def ensure_public_role(conn: psycopg.Connection, settings: Settings) -> None:
    """Create or update the public role: login, password, and SELECT on the views only.

    Idempotent; run as the superuser after the control migrations (the lead's tenancy
    apply is the natural place; `hypervision public setup` runs it alone).
    """
    role = sql.Identifier(settings.public_role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                          (settings.public_role,)).fetchone()
    with conn.transaction():
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOINHERIT PASSWORD {}").format(
            role, sql.Literal(settings.ensure_role_password(settings.public_role))))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(settings.pg_database), role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA hv TO {}").format(role))
        for view in PUBLIC_VIEWS:
            schema, name = view.split(".")
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.Identifier(schema, name), role))


# Creating roles and granting them -------------------------------------------------------------


def create_role(conn: psycopg.Connection, role: str, *, login: bool) -> None:
    """Create the role unless it exists (no password: `set_password`)."""
    if not role_exists(conn, role):
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")))


def set_password(conn: psycopg.Connection, role: str, password: str, *,
                 inherit: bool = True) -> None:
    """Set a login role's password. NOINHERIT for the ingest role: it holds no member's
    privileges until it switches to that member's writer role with SET ROLE."""
    conn.execute(
        sql.SQL("ALTER ROLE {} LOGIN {} PASSWORD {}").format(
            sql.Identifier(role), sql.SQL("INHERIT" if inherit else "NOINHERIT"),
            sql.Literal(password),
        )
    )


def ensure_login_role(conn: psycopg.Connection, role: str, password: str, *,
                      inherit: bool = True) -> None:
    """Create a login role unless it exists, and set its password (idempotent)."""
    create_role(conn, role, login=True)
    set_password(conn, role, password, inherit=inherit)


def limit_reader(conn: psycopg.Connection, role: str, settings: Settings) -> None:
    """A reader's statements and idle transactions are bounded (HV_READER_*_TIMEOUT):
    set on the role, so they hold for every session, whoever opens it."""
    for name, value in (("statement_timeout", settings.reader_statement_timeout),
                        ("idle_in_transaction_session_timeout",
                         settings.reader_idle_in_transaction_timeout)):
        conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(
            sql.Identifier(role), sql.Identifier(name), sql.Literal(value)))


def grant_ingest(conn: psycopg.Connection, settings: Settings) -> None:
    """The ingest role reads the registry and writes dead letters and outcome counters."""
    ingest = sql.Identifier(settings.ingest_role)
    database = sql.Identifier(settings.pg_database)
    for statement in (
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
        "GRANT USAGE ON SCHEMA hv TO {role}",
        "GRANT SELECT ON hv.staging_uplinks, hv.staging_measurements, hv.staging_events"
        " TO {role}",
        "GRANT SELECT ON hv.members, hv.devices, hv.device_models TO {role}",
        # Which ChirpStack tenant and applications are each member's (ingest.process).
        "GRANT SELECT ON hv.chirpstack_tenants, hv.chirpstack_applications TO {role}",
        "GRANT SELECT, INSERT ON hv.dead_letters TO {role}",
        "GRANT USAGE ON SEQUENCE hv.dead_letters_id_seq TO {role}",
        "GRANT SELECT, INSERT, UPDATE ON hv.ingest_outcomes TO {role}",
        # Members on other servers (hypervision.placement): receipts written beside their
        # rows, counted once on the primary.
        "GRANT SELECT, INSERT ON hv.ingest_receipts, hv.ingest_counted TO {role}",
    ):
        conn.execute(sql.SQL(statement).format(db=database, role=ingest))


def grant_member(conn: psycopg.Connection, settings: Settings, slug: str, schema: str) -> None:
    """A member's grants: the reader reads its schema, the writer inserts what the pipeline
    stores, the ingest role may become the writer; the API role gets its column privileges
    (`grant_alert_changes`, `grant_downlink_requests`)."""
    ids = {
        "schema": sql.Identifier(schema),
        "owner": sql.Identifier(member_role(slug, "owner")),
        "writer": sql.Identifier(member_role(slug, "writer")),
        "reader": sql.Identifier(member_role(slug, "reader")),
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
        conn.execute(sql.SQL(statement).format(**ids))
    # The API acknowledges and closes alerts, and records the downlinks its callers
    # send: column privileges on those two tables, nothing else of the schema.
    grant_alert_changes(conn, settings, schema)
    grant_downlink_requests(conn, settings, schema)


def ensure_superset_role(conn: psycopg.Connection, settings: Settings) -> None:
    """Superset's login role, owner of its metadata database (hypervision.superset.server)."""
    role = settings.superset_db_role
    ensure_login_role(conn, role, settings.ensure_role_password(role), inherit=True)


def ensure_operator_login(conn: psycopg.Connection, settings: Settings) -> None:
    """hv_operator_reader (created by the control migration) may log in, with a password
    derived from HV_SECRET_KEY like every platform role (hypervision.superset.provision)."""
    set_password(conn, OPERATOR_READER, settings.ensure_role_password(OPERATOR_READER))
    limit_reader(conn, OPERATOR_READER, settings)
