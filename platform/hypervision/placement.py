"""Where each member's data lives: the database servers, and each member's server.

A deployment has one database server, the *primary*, or several (docs/scale.md). The
primary is the one of the HV_PG_* settings (or HV_ADMIN_DATABASE_URL): it keeps the
control catalogue (schema `hv`: members, devices, accounts, audit, outcomes) and the
members placed on it. Other servers (role `members`) hold members' schemas only; they carry
the structure of `hv` (its migrations run there too, for the staging tables the pipeline
copies into and the migration ledger), never its rows, except the pipeline's receipts.

Servers are declared in the YAML file HV_DATABASE_SERVERS_FILE:

    version: v1
    kind: database_servers
    servers:
      - {name: quimper, role: primary}          # connection: the HV_PG_* settings
      - name: brest
        role: members
        host: 198.18.0.12                        # what login roles connect to (TCP)
        port: 5432
        database: hypervision
        sslmode: verify-full                     # optional, libpq's
        admin_url_file: /run/secrets/brest_admin # the superuser's conninfo (a secret)
        replica: {host: 198.18.0.13, port: 5432} # optional: a streaming replica of it

Without the file there is one server, named `primary`. A member's tenant file names its
server (`server: brest`; default: the primary); `tenants apply` records the placement in
`hv.members.server` (NULL: the primary) when it creates the member, and only `hypervision
tenants move` changes it afterwards (hypervision.tenancy.move).

A server may declare one read replica (a physical streaming replica, kept by PostgreSQL,
not by the platform): its database and sslmode are the server's unless given. Only the
dashboards read it (Superset's member connections, hypervision.superset.provision);
everything that writes, and the API's reads, stay on the server (docs/scale.md).

This module is the one place that turns a server's name into a connection. It sits in the
foundation, beside hypervision.settings: the pipeline (ingest.tasks) asks it for the
connection of each member's server, the API and the exports for the reader's.

While a member moves, its ingestion pauses: `hv.members.ingest_paused_at` is set, and the
pipeline leaves the member's events in the queue. The pipeline holds a shared advisory
lock per member (MEMBER_LOCK) on the primary for as long as it writes a batch; setting the
pause takes it exclusively, so once the pause is committed no batch is still writing the
member's rows anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import psycopg
import yaml
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from hypervision.settings import Settings

DEFAULT_PRIMARY = "primary"
# The class of the advisory locks a member's writers share and its move takes alone
# (pg_advisory_xact_lock(MEMBER_LOCK, hashtext(slug))). "hv" in ASCII.
MEMBER_LOCK = 0x6876
ServerRole = Literal["primary", "members"]
SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]


class PlacementError(ValueError):
    """The servers file or a member's placement is wrong; the message says what and where."""


class _ReplicaSpec(BaseModel):
    """A server's read replica: where login roles reach it. It has the server's roles and
    passwords (it is a copy), so no secret of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(ge=1, le=65535)
    database: str | None = None   # default: its server's
    sslmode: SslMode | None = None  # default: its server's


class _ServerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    role: ServerRole = "members"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    # How login roles' connections use TLS (libpq's sslmode); libpq's default when unset.
    sslmode: SslMode | None = None
    # The superuser's connection (libpq URL or key=value string): migrations, tenancy,
    # moves. A secret: prefer admin_url_file.
    admin_url: SecretStr | None = None
    admin_url_file: Path | None = None
    # A streaming replica the dashboards read instead of the server (optional).
    replica: _ReplicaSpec | None = None

    @model_validator(mode="after")
    def _connection(self) -> _ServerSpec:
        given = [f for f in ("host", "port", "database", "sslmode", "admin_url",
                             "admin_url_file")
                 if getattr(self, f) is not None]
        if self.role == "primary":
            if given:
                raise ValueError(f"server {self.name}: the primary's connection is the"
                                 f" HV_PG_* settings; remove {', '.join(given)}")
            return self
        missing = [f for f in ("host", "port", "database") if getattr(self, f) is None]
        if self.admin_url is None and self.admin_url_file is None:
            missing.append("admin_url or admin_url_file")
        if missing:
            raise ValueError(f"server {self.name}: missing {', '.join(missing)}")
        return self


class _ServersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["v1"]
    kind: Literal["database_servers"]
    servers: list[_ServerSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _ServersFile:
        names = [s.name for s in self.servers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"server(s) declared twice: {', '.join(twice)}")
        if sum(1 for s in self.servers if s.role == "primary") > 1:
            raise ValueError("more than one server has role primary")
        return self


@dataclass(frozen=True)
class Replica:
    """A server's read replica: where login roles reach it (the server's roles and
    passwords, since it is a physical copy)."""

    host: str
    port: int
    database: str
    sslmode: str | None = None

    def describe(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Server:
    """A database server: its name, role, and where its login roles and its superuser
    connect. `admin` is a conninfo carrying a secret: never log it."""

    name: str
    role: ServerRole
    host: str
    port: int
    database: str
    admin_url: str | None = None
    # Read when the superuser's connection is asked for, not when the servers file is
    # loaded: a worker host reads the file for the login roles' addresses and has no
    # business holding the superuser's secret of every server.
    admin_url_file: Path | None = None
    sslmode: str | None = None
    replica: Replica | None = None

    @property
    def primary(self) -> bool:
        return self.role == "primary"

    @property
    def for_dashboards(self) -> Server | Replica:
        """Where dashboards read this server's members: its replica when it has one."""
        return self.replica or self

    @property
    def admin(self) -> str:
        """The superuser's conninfo (a secret)."""
        if self.admin_url is not None:
            return self.admin_url
        assert self.admin_url_file is not None
        try:
            return self.admin_url_file.read_text("utf-8").strip()
        except OSError as exc:
            raise PlacementError(f"server {self.name}: admin_url_file {self.admin_url_file}:"
                                 f" {exc.strerror}") from None

    def describe(self) -> str:
        return f"{self.name} ({self.role}, {self.host}:{self.port}/{self.database})"


_cache: dict[tuple[str, float], dict[str, Server]] = {}


def load_servers(settings: Settings) -> dict[str, Server]:
    """Every declared server by name, the primary first. Raises PlacementError naming the
    file and the problem."""
    path = settings.database_servers_file
    if path is None:
        return {DEFAULT_PRIMARY: _primary(settings, DEFAULT_PRIMARY)}
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError as exc:
        raise PlacementError(f"HV_DATABASE_SERVERS_FILE {path}: {exc.strerror}") from None
    if key in _cache:
        return _cache[key]
    try:
        parsed = _ServersFile.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise PlacementError(f"{path}: {exc}") from None
    found: dict[str, Server] = {}
    first = next((s for s in parsed.servers if s.role == "primary"), None)
    primary = _primary(settings, first.name if first else DEFAULT_PRIMARY)
    found[primary.name] = replace(primary, replica=_replica(first, primary))
    for spec in parsed.servers:
        if spec.role == "primary":
            continue
        admin = spec.admin_url.get_secret_value() if spec.admin_url is not None else None
        assert spec.host is not None and spec.port is not None and spec.database is not None
        if (spec.host, spec.port) == (settings.pg_host, settings.pg_port):
            raise PlacementError(f"{path}: server {spec.name} has the primary's address")
        declared = Server(spec.name, "members", spec.host, spec.port, spec.database, admin,
                          spec.admin_url_file, spec.sslmode)
        found[spec.name] = replace(declared, replica=_replica(spec, declared))
    _distinct_addresses(path, found)
    _cache.clear()
    _cache[key] = found
    return found


def _replica(spec: _ServerSpec | None, server: Server) -> Replica | None:
    """The server's replica as declared, its database and sslmode the server's unless
    given."""
    if spec is None or spec.replica is None:
        return None
    given = spec.replica
    return Replica(given.host, given.port, given.database or server.database,
                   given.sslmode or server.sslmode)


def _distinct_addresses(path: Path, servers: dict[str, Server]) -> None:
    """Refuse a replica at the address of a server or of another replica: dashboards would
    read a server as if it were a copy, or two servers' members through one copy."""
    seen: dict[tuple[str, int], str] = {
        (s.host, s.port): f"server {s.name}" for s in servers.values()}
    for found in servers.values():
        if found.replica is None:
            continue
        address = (found.replica.host, found.replica.port)
        if address in seen:
            raise PlacementError(
                f"{path}: the replica of server {found.name} has the address of"
                f" {seen[address]} ({found.replica.host}:{found.replica.port}); a replica is"
                " a server's streaming copy, at an address of its own")
        seen[address] = f"the replica of server {found.name}"


def _primary(settings: Settings, name: str) -> Server:
    return Server(name, "primary", settings.pg_host, settings.pg_port, settings.pg_database,
                  settings.admin_conninfo())


def primary(settings: Settings) -> Server:
    return next(iter(load_servers(settings).values()))


def server(settings: Settings, name: str | None) -> Server:
    """The server of this name (None: the primary); PlacementError for an unknown one."""
    servers = load_servers(settings)
    if name is None:
        return next(iter(servers.values()))
    try:
        return servers[name]
    except KeyError:
        where = settings.database_servers_file or "HV_DATABASE_SERVERS_FILE (unset)"
        raise PlacementError(f"unknown database server {name!r}: {where} declares"
                             f" {', '.join(servers)}") from None


def column_value(settings: Settings, name: str | None) -> str | None:
    """What `hv.members.server` holds for a member on this server: NULL for the primary."""
    found = server(settings, name)
    return None if found.primary else found.name


def admin_conninfo(settings: Settings, name: str | None) -> str:
    return server(settings, name).admin


def role_conninfo(settings: Settings, name: str | None, role: str) -> str:
    """A password connection over TCP as one of the platform's login roles, on a server.
    Every server's roles of one name share one password (hypervision.role_secrets)."""
    found = server(settings, name)
    if found.primary:
        return settings.role_conninfo(role)
    return _login(settings, found, role)


def replica_conninfo(settings: Settings, name: str | None, role: str) -> str:
    """A password connection over TCP as a login role to a server's read replica (the
    server's roles and passwords); PlacementError if the server declares none."""
    found = server(settings, name)
    if found.replica is None:
        raise PlacementError(f"database server {found.name} declares no replica")
    return _login(settings, found.replica, role)


def _login(settings: Settings, where: Server | Replica, role: str) -> str:
    tls = {} if where.sslmode is None else {"sslmode": where.sslmode}
    return make_conninfo("", host=where.host, port=str(where.port), dbname=where.database,
                         user=role, password=settings.role_password(role), **tls)


def connect_admin(settings: Settings, name: str | None, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(admin_conninfo(settings, name), autocommit=True, **kwargs)


def connect_as(settings: Settings, name: str | None, role: str,
               **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(role_conninfo(settings, name, role), **kwargs)


class Connections:
    """Superuser connections to the database servers: the primary's, given (None names
    it), and the others', opened when first needed and closed together. A periodic job
    or a command walking every member asks it for each member's server."""

    def __init__(self, settings: Settings, primary: psycopg.Connection | None = None) -> None:
        self.settings = settings
        self.primary = primary
        self._open: dict[str, psycopg.Connection] = {}

    def get(self, name: str | None) -> psycopg.Connection:
        if name is None:
            if self.primary is None:
                raise PlacementError("no connection to the primary was given")
            return self.primary
        if name not in self._open:
            self._open[name] = connect_admin(self.settings, name)
        return self._open[name]

    def close(self) -> None:
        for conn in self._open.values():
            conn.close()
        self._open.clear()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextmanager
def transaction(primary: psycopg.Connection, member: psycopg.Connection) -> Iterator[None]:
    """A transaction on the primary and, inside it, one on the member's server (none more
    when the member is on the primary, `member is primary`): a change to the member's
    schema commits just before the primary's records of it (audit entry, catalogue). A
    crash between the two commits leaves the change without its record."""
    with primary.transaction(), (member.transaction() if member is not primary
                                 else nullcontext()):
        yield


# Members' placement, read from the primary's catalogue -----------------------------------


def member_server(conn: psycopg.Connection, slug: str) -> str | None:
    """The server a member is placed on (None: the primary). `conn` is on the primary."""
    row = conn.execute("SELECT server FROM hv.members WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise PlacementError(f"no member {slug!r}")
    return row[0]


@dataclass(frozen=True)
class Placement:
    server: str | None  # None: the primary
    paused: bool


def lock_and_read(conn: psycopg.Connection, slugs: Iterable[str]) -> dict[str, Placement]:
    """Inside the caller's transaction on the primary: take each member's shared lock (in
    one order, so writers never wait on each other in a cycle) and read where it is and
    whether its ingestion is paused. The locks last until the transaction ends."""
    ordered = sorted(set(slugs))
    conn.execute("SELECT count(pg_advisory_xact_lock_shared(%s, hashtext(s)))"
                 " FROM (SELECT unnest(%s::text[]) AS s ORDER BY 1) AS members",
                 (MEMBER_LOCK, ordered))
    # A statement of its own, after the locks: it reads through a snapshot taken once
    # they are held, so a pause committed while this waited for them is seen.
    rows = conn.execute(
        "SELECT slug, server, ingest_paused_at IS NOT NULL FROM hv.members"
        " WHERE slug = ANY(%s)", (ordered,)
    ).fetchall()
    return {slug: Placement(srv, paused) for slug, srv, paused in rows}
