"""Backups: checksummed archives of the database, rotated, and their restore.

See docs/runbook.md, "Backups and restore". An archive is a folder under the backup
directory (`HV_BACKUP_DIR`, by default `HV_DATA_DIR/backups`):

    20260730T023000Z-full/           a full archive (nightly, or `hypervision backup run`)
        manifest.json                what it holds: databases, roles, members, tables, rows
        SHA256SUMS                   every other file's checksum, `sha256sum -c` compatible
        databases/hypervision.dump   `pg_dump -Fc` of the platform's database
        databases/superset.dump      Superset's metadata database, when it exists
        members/<slug>/<table>.copy.gz   each member table's rows (COPY text format, gzip)
                                     read on the member's server (hypervision.placement)
    20260730T101500Z-member-alpha/   one member only (`hypervision backup run --member`)

Archives are encrypted at rest with age unless plain ones are asked for: every data file
then carries `.age` and is written through the encryption as it is produced, and the
private key is only needed to restore (hypervision.backup_encryption).

Why two forms of the same data:
- The whole-database dump restores everything, TimescaleDB catalogue included. It is
  restored into a new database (with `timescaledb_pre_restore()` and
  `timescaledb_post_restore()` around `pg_restore`), which then takes the live one's
  name; the live database is kept aside under another name, never dropped here.
- A member's hypertables keep their rows in chunks under `_timescaledb_internal`, so
  `pg_dump --schema=tenant_<slug>` holds their definition but none of their rows, and
  its output cannot be restored into a database whose TimescaleDB catalogue already
  knows that schema. The member's tables are therefore copied as rows
  (`COPY (SELECT ...) TO STDOUT`), and restored into the existing schema, which the
  tenant migrations define: truncate, then `COPY ... FROM STDIN`, in one transaction,
  with triggers off as in any restore.

Everything is read in one snapshot: the member copies run in a REPEATABLE READ
transaction whose snapshot `pg_dump --snapshot` shares, so every file of an archive shows
the same instant. A member placed on another database server is read there, in a snapshot
of that server taken just after the primary's; the whole-database dumps are the primary's,
so a whole restore leaves those members' servers as they are, and each such member is
restored from the archive with `--member` (on the server it is placed on then).

An archive is written under a `.partial-` name and renamed when complete, so a listed
archive is always whole. One backup runs at a time (a lock file).

Roles are cluster-wide and not in a database dump; the manifest lists the platform's
roles and memberships so that a restore on a new server creates the missing ones. Role
passwords are not in the archive: they are files of HV_ROLE_SECRETS_DIR, and `hypervision
tenants apply` sets them again (new ones on a new server). The manifest records the
audit chain's head, also appended to HV_AUDIT_ANCHOR_FILE (`audit verify --anchors`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hypervision import audit, dump, placement
from hypervision import backup_encryption as age
from hypervision.settings import Settings

Log = Callable[[str], None]

FORMAT = "hypervision-backup/1"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
PARTIAL_PREFIX = ".partial-"
LOCK_FILE = ".lock"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?-(full|member-([a-z][a-z0-9_]{1,39}))$")
DATABASE_PRIVILEGES = {"CONNECT", "CREATE", "TEMPORARY"}


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why and what to do."""


def _quiet(message: str) -> None:
    """The default `log`: say nothing."""


# Where and what -------------------------------------------------------------------------


def backup_dir(settings: Settings) -> Path:
    return (settings.backup_dir or settings.data_dir / "backups").resolve()


def anchor_file(settings: Settings) -> Path:
    """Where each backup appends the audit chain's head: a file to copy off the host (or
    point HV_AUDIT_ANCHOR_FILE at storage the operator keeps)."""
    return (settings.audit_anchor_file or backup_dir(settings) / "audit-anchors.log").resolve()


@dataclass(frozen=True)
class Archive:
    """One archive folder, described by its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def scope(self) -> str:
        """`full`, or `member:<slug>` for a single member's archive (rotation groups)."""
        return str(self.manifest["scope"])

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])

    @property
    def members(self) -> list[str]:
        return [m["slug"] for m in self.manifest["members"]]

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def list_archives(settings: Settings) -> list[Archive]:
    """Every complete archive in the backup directory, newest first."""
    root = backup_dir(settings)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and _NAME.match(path.name) and (path / MANIFEST).is_file():
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") == FORMAT:
                found.append(Archive(path, manifest))
    found.sort(key=lambda a: (a.created_at, a.name), reverse=True)
    return found


def find_archive(settings: Settings, ref: str) -> Archive:
    """An archive by folder name (in the backup directory) or by path."""
    candidate = Path(ref)
    path = candidate if candidate.is_absolute() or os.sep in ref else backup_dir(settings) / ref
    if not (path / MANIFEST).is_file():
        raise BackupError(f"no archive at {path} (see `hypervision backup list`)")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a {FORMAT} archive")
    return Archive(path.resolve(), manifest)


# Checksums ------------------------------------------------------------------------------


def _write_sums(folder: Path) -> None:
    """SHA256SUMS over every file of the archive, in the format of `sha256sum`."""
    names = [n for n in dump.folder_files(folder) if n != SUMS]
    lines = [f"{dump.file_sha256(folder / n)}  {n}\n" for n in names]
    (folder / SUMS).write_text("".join(lines), encoding="utf-8")


def verify(archive: Archive, only: Callable[[str], bool] = lambda _: True) -> list[str]:
    """Problems found in an archive's files (empty when it is intact).

    Every file the manifest names must be listed in SHA256SUMS and match it; `only`
    restricts the check to some files (one member's, say).
    """
    sums_file = archive.path / SUMS
    if not sums_file.is_file():
        return [f"{SUMS} is missing"]
    listed: dict[str, str] = {}
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    needed = [MANIFEST, *_manifest_files(archive.manifest)]
    problems = [f"{name}: not in {SUMS}" for name in needed if name not in listed]
    for name, digest in sorted(listed.items()):
        if not only(name) and name != MANIFEST:
            continue
        path = archive.path / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif dump.file_sha256(path) != digest:
            problems.append(f"{name}: checksum mismatch")
    return problems


def _manifest_files(manifest: dict[str, Any]) -> list[str]:
    files = [d["file"] for d in manifest["databases"]]
    for member in manifest["members"]:
        files.extend(t["file"] for t in member["tables"])
    return files


# Connections and PostgreSQL programs ----------------------------------------------------


def _conn_params(settings: Settings, dbname: str | None = None) -> dict[str, Any]:
    params = conninfo_to_dict(settings.admin_conninfo())
    if dbname is not None:
        params["dbname"] = dbname
    return params


def _connect(settings: Settings, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(make_conninfo("", **_conn_params(settings, dbname)), autocommit=True)


def _pg_command(settings: Settings, program: str, args: list[str],
                dbname: str | None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of pg_dump or pg_restore against our server.

    The password, if any, goes through the environment (PGPASSWORD), never on the command
    line where any local user could read it in the process list.
    """
    params = _conn_params(settings, dbname)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    argv = [str(settings.pg_bin_dir / program), *args, "--dbname", make_conninfo("", **params)]
    return argv, env


def _run_pg(settings: Settings, program: str, args: list[str], dbname: str | None) -> None:
    argv, env = _pg_command(settings, program, args, dbname)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{program} failed (exit {result.returncode}):\n"
                          f"{result.stderr.strip()[-4000:]}")


def _dump_encrypted(settings: Settings, args: list[str], dbname: str, target: Path,
                    keys: list[Any]) -> None:
    """pg_dump to its standard output, encrypted on the way into `target`."""
    argv, env = _pg_command(settings, "pg_dump", args, dbname)
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            age.encrypt_stream(process.stdout, target, keys)
        except BaseException:
            process.kill()
            raise
        errors = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise BackupError(f"pg_dump failed (exit {process.returncode}):\n{errors.strip()[-4000:]}")


# Reading the database -------------------------------------------------------------------


def _members(conn: psycopg.Connection, only: str | None) -> list[tuple[str, str, str | None]]:
    """(slug, schema, server) of every member, or of `only`; server None: the primary."""
    rows = conn.execute(
        "SELECT slug, schema_name, server FROM hv.members"
        " WHERE %(only)s::text IS NULL OR slug = %(only)s ORDER BY slug",
        {"only": only}).fetchall()
    if only is not None and not rows:
        raise BackupError(f"no member {only!r} in the database (see `hypervision tenants plan`)")
    return [(r[0], r[1], r[2]) for r in rows]


def _member_tables(conn: psycopg.Connection, schema: str) -> list[tuple[str, list[str]]]:
    """The member schema's own tables and their columns (hypervision.dump.schema_tables);
    the rows are copied as text, so the types are not needed."""
    return [(name, [column for column, _ in columns])
            for name, columns in dump.schema_tables(conn, schema).items()]


def _member_sequences(conn: psycopg.Connection, schema: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s"
        " ORDER BY sequencename", (schema,)).fetchall()
    return [{"name": r[0], "last_value": r[1]} for r in rows]


def _roles(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cluster's roles (PostgreSQL's own `pg_*` aside) and their memberships."""
    roles = conn.execute(
        """
        SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
               rolbypassrls
        FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname
        """).fetchall()
    keys = ("name", "superuser", "inherit", "createrole", "createdb", "login", "bypassrls")
    memberships = conn.execute(
        """
        SELECT r.rolname, m.rolname, a.admin_option
        FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
        JOIN pg_roles m ON m.oid = a.member
        WHERE r.rolname !~ '^pg_' AND m.rolname !~ '^pg_' ORDER BY 1, 2
        """).fetchall()
    return ([dict(zip(keys, row, strict=True)) for row in roles],
            [{"role": r, "member": m, "admin": a} for r, m, a in memberships])


def _database_facts(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """Owner, privileges and settings of a database, which a dump without --create lacks
    (so a restored database would otherwise let PUBLIC connect again)."""
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba), datacl IS NULL FROM pg_database WHERE datname = %s",
        (name,)).fetchone()
    if row is None:
        return None
    acl = conn.execute(
        """
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
               a.privilege_type, a.is_grantable
        FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s ORDER BY 1, 2
        """, (name,)).fetchall()
    settings = conn.execute(
        """
        SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d
        ON d.oid = s.setdatabase WHERE d.datname = %s AND s.setrole = 0
        """, (name,)).fetchall()
    return {
        "name": name,
        "owner": row[0],
        "default_acl": row[1],
        "acl": [{"grantee": g, "privilege": p, "grantable": w} for g, p, w in acl],
        "settings": [s[0] for s in settings],
    }


def _timescaledb_version(settings: Settings, dbname: str) -> str | None:
    with _connect(settings, dbname) as conn:
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return None if row is None else str(row[0])


# Writing an archive ---------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One backup or restore at a time on this backup directory, across processes and
    containers sharing it: a beat-started run and an operator's run never interleave."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup or restore is running on {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _archive_name(root: Path, when: datetime, scope_part: str) -> str:
    stamp = when.strftime(_STAMP)
    name = f"{stamp}-{scope_part}"
    counter = 1
    while (root / name).exists() or (root / f"{PARTIAL_PREFIX}{name}").exists():
        counter += 1
        name = f"{stamp}-{counter}-{scope_part}"
    return name


def _copy_table_out(conn: psycopg.Connection, schema: str, table: str, columns: list[str],
                    target: Path, keys: list[Any]) -> int:
    """Stream one table's rows into a gzip file in COPY text format, encrypted when there
    are `keys`; returns the rows."""
    columns_sql = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL("COPY (SELECT {} FROM {}.{}) TO STDOUT").format(
        columns_sql, sql.Identifier(schema), sql.Identifier(table))
    rows = 0
    with contextlib.ExitStack() as stack:
        if keys:
            sink = stack.enter_context(age.encrypting(target, keys))
            out = stack.enter_context(gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6))
        else:
            out = stack.enter_context(gzip.open(target, "wb", compresslevel=6))
        with conn.cursor() as cur, cur.copy(query) as copy:
            for block in copy:
                out.write(block)
                rows += bytes(block).count(b"\n")
    return rows


def run_backup(
    settings: Settings,
    *,
    member: str | None = None,
    now: datetime | None = None,
    source: str = "cli",
    unencrypted: bool = False,
    log: Log = _quiet,
) -> Archive:
    """Write a new archive: full (the databases and every member), or one member's.

    0. Encrypted for HV_BACKUP_AGE_RECIPIENTS; without recipients, refused unless plain
       archives are asked for (`unencrypted`, or HV_BACKUP_UNENCRYPTED).
    1. Take the lock and clear what a crashed run left (`.partial-*` folders).
    2. Open a REPEATABLE READ transaction and export its snapshot.
    3. Full archives only: `pg_dump -Fc --snapshot` of the platform's database, then of
       Superset's metadata database when there is one (its own snapshot).
    4. Copy each member table's rows, in the same snapshot.
    5. Write manifest.json and SHA256SUMS, then rename the folder into place.
    6. Record the backup in the audit trail (`source` is `cli` or `job`): an archive is
       a copy of every member's data.
    """
    root = backup_dir(settings)
    keys = _recipients(settings, unencrypted)
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    with _locked(root):
        for leftover in root.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        name = _archive_name(root, when, "full" if member is None else f"member-{member}")
        work = root / f"{PARTIAL_PREFIX}{name}"
        work.mkdir(mode=0o700)
        try:
            manifest = _write_archive(settings, work, member, when, keys, log)
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            _write_sums(work)
            for path in work.rglob("*"):
                path.chmod(0o700 if path.is_dir() else 0o600)
            final = root / name
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    log(f"+ archive {final}")
    head = manifest["audit_head"]
    audit.write_anchor(None, anchor_file(settings),
                       audit.Anchor(head["at"], head["last_id"], head["hash"]))
    archive = Archive(final, manifest)
    rows = sum(t["rows"] for m in manifest["members"] for t in m["tables"])
    with _connect(settings) as conn, conn.transaction():
        _audit(conn, member, "backup.run", archive, rows, source=source)
    return archive


def _recipients(settings: Settings, unencrypted: bool) -> list[Any]:
    if unencrypted:
        return []
    try:
        keys = age.recipients(settings)
    except age.EncryptionError as exc:
        raise BackupError(str(exc)) from None
    if not keys and not settings.backup_unencrypted:
        raise BackupError(
            "backups are encrypted at rest and no public key is set: set"
            " HV_BACKUP_AGE_RECIPIENTS (or HV_BACKUP_AGE_RECIPIENTS_FILE); make a key pair"
            " with `hypervision backup keygen --output FILE`, kept off the backup volume."
            " To write plain archives instead: --unencrypted or HV_BACKUP_UNENCRYPTED=true"
        )
    return keys


def _write_archive(settings: Settings, work: Path, member: str | None, when: datetime,
                   keys: list[Any], log: Log) -> dict[str, Any]:
    database = settings.pg_database
    suffix = age.SUFFIX if keys else ""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "scope": "full" if member is None else f"member:{member}",
        "created_at": when.isoformat(),
        "database": database,
        "encryption": ({"method": "age", "recipients": [str(k) for k in keys],
                        "keycheck": age.KEYCHECK} if keys else None),
        "databases": [],
        "members": [],
    }
    if keys:
        age.write_keycheck(work, keys)
    with _connect(settings) as conn:
        (manifest["server_version"],) = conn.execute("SHOW server_version").fetchone() or ("",)
        manifest["roles"], manifest["memberships"] = _roles(conn)
        # The copies below and `pg_dump --snapshot` read this transaction's snapshot.
        with dump.snapshot(conn):
            exported = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert exported is not None  # the function returns one row
            snapshot = exported[0]
            # The audit chain's head in this snapshot: anchored outside the database in the
            # archive and in the operator's anchor file (`audit verify --anchors`).
            anchor = audit.head(conn)
            manifest["audit_head"] = {"at": anchor.at, "last_id": anchor.last_id,
                                      "hash": anchor.hash}
            if member is None:
                (work / "databases").mkdir(mode=0o700)
                for dbname in (database, settings.superset_database):
                    facts = _database_facts(conn, dbname)
                    if facts is None or any(d["name"] == dbname for d in manifest["databases"]):
                        continue
                    file = f"databases/{dbname}.dump{suffix}"
                    log(f"+ pg_dump {dbname}")
                    snapshot_args = ["--snapshot", snapshot] if dbname == database else []
                    if keys:
                        _dump_encrypted(settings, ["--format=custom", *snapshot_args], dbname,
                                        work / file, keys)
                    else:
                        _run_pg(settings, "pg_dump", ["--format=custom", "--file",
                                                      str(work / file), *snapshot_args], dbname)
                    facts["file"] = file
                    facts["timescaledb"] = _timescaledb_version(settings, dbname)
                    manifest["databases"].append(facts)
            with placement.Connections(settings, conn) as servers:
                for slug, schema, server in _members(conn, member):
                    if server is None:
                        entry = _copy_member(conn, work, slug, schema, keys)
                    else:
                        # Read on the member's server, in a snapshot of its own taken just
                        # after the primary's (a member's rows are only there).
                        remote = servers.get(server)
                        with dump.snapshot(remote):
                            entry = _copy_member(remote, work, slug, schema, keys)
                        entry["server"] = server
                    rows = sum(t["rows"] for t in entry["tables"])
                    where = "" if server is None else f" (on {server})"
                    log(f"+ member {slug}{where}: {len(entry['tables'])} tables, {rows} rows")
                    manifest["members"].append(entry)
    return manifest


def _copy_member(conn: psycopg.Connection, work: Path, slug: str, schema: str,
                 keys: list[Any]) -> dict[str, Any]:
    """Copy one member's tables into the archive from `conn`, the member's server, inside
    the caller's snapshot; returns the member's manifest entry."""
    folder = work / "members" / slug
    folder.mkdir(parents=True, mode=0o700)
    versions = [r[0] for r in conn.execute(
        "SELECT version FROM hv.schema_migrations WHERE schema_name = %s"
        " ORDER BY version", (schema,)).fetchall()]
    suffix = age.SUFFIX if keys else ""
    tables: list[dict[str, Any]] = []
    for table, columns in _member_tables(conn, schema):
        file = f"members/{slug}/{table}.copy.gz{suffix}"
        rows = _copy_table_out(conn, schema, table, columns, work / file, keys)
        tables.append({"name": table, "columns": columns, "rows": rows, "file": file})
    return {"slug": slug, "schema": schema, "migrations": versions, "tables": tables,
            "sequences": _member_sequences(conn, schema),
            "instance": dump.schema_instance(conn, schema).id}



# Rotation -------------------------------------------------------------------------------


def to_keep(archives: list[Archive], daily: int, weekly: int) -> set[Path]:
    """Which archives of one scope the rotation keeps: the newest of each of the last
    `daily` days that have one, and the newest of each of the last `weekly` ISO weeks."""
    keep: set[Path] = set()
    days: set[object] = set()
    weeks: set[object] = set()
    for archive in sorted(archives, key=lambda a: (a.created_at, a.name), reverse=True):
        day = archive.created_at.date()
        week = archive.created_at.isocalendar()[:2]
        if day not in days and len(days) < daily:
            days.add(day)
            keep.add(archive.path)
        if week not in weeks and len(weeks) < weekly:
            weeks.add(week)
            keep.add(archive.path)
    return keep


def rotate(settings: Settings, *, log: Log = _quiet) -> list[str]:
    """Delete the archives the rotation does not keep, scope by scope; returns their names."""
    archives = list_archives(settings)
    removed = []
    with _locked(backup_dir(settings)):
        for scope in sorted({a.scope for a in archives}):
            group = [a for a in archives if a.scope == scope]
            keep = to_keep(group, settings.backup_keep_daily, settings.backup_keep_weekly)
            for archive in group:
                if archive.path not in keep:
                    shutil.rmtree(archive.path)
                    removed.append(archive.name)
                    log(f"- archive {archive.name} (rotation)")
    return removed


# Restoring one member -------------------------------------------------------------------


def _member_entry(archive: Archive, slug: str) -> dict[str, Any]:
    for entry in archive.manifest["members"]:
        if entry["slug"] == slug:
            return entry
    raise BackupError(f"archive {archive.name} holds no member {slug!r}"
                      f" (it holds: {', '.join(archive.members) or 'none'})")


def _identities(settings: Settings, archive: Archive, identity: Path | None) -> list[Any]:
    """The private keys that open an encrypted archive, checked against it before anything
    is restored; none for a plain archive."""
    if not archive.manifest.get("encryption"):
        return []
    path = identity or settings.backup_age_identity_file
    if path is None:
        raise BackupError(
            f"archive {archive.name} is encrypted: give its private key with --identity FILE"
            " or HV_BACKUP_AGE_IDENTITY_FILE")
    try:
        identities = age.load_identities(path, backup_dir(settings))
        age.check_identity(archive.path, identities)
    except age.EncryptionError as exc:
        raise BackupError(str(exc)) from None
    return identities


def restore_member(settings: Settings, archive: Archive, slug: str, *, log: Log = _quiet,
                   identity: Path | None = None) -> int:
    """Replace one member's rows with the archive's, in its existing schema on the server
    it is placed on now (hypervision.placement), whichever it was on when archived.

    1. Check the member's files against SHA256SUMS.
    2. Check the live schema: it must exist (`hypervision tenants apply` creates it) and
       have every migration the archive had, so that each archived column exists.
    3. In one transaction, with triggers off (session_replication_role = replica, as
       pg_restore does): truncate the archived tables, COPY the rows back (TimescaleDB
       routes them into chunks), set the schema's sequences, refresh materialized views.
       Rows archived from another copy of the schema (export cursors, hypervision.export)
       get this server's transaction id.
    4. Record the restore in the audit trail on the primary, in a transaction committed
       just after the member server's (the same one when the member is on the primary).
    Returns the number of rows restored.
    """
    entry = _member_entry(archive, slug)
    prefix = f"members/{slug}/"
    problems = verify(archive, only=lambda name: name.startswith(prefix))
    if problems:
        raise BackupError(f"archive {archive.name} is damaged: {'; '.join(problems)}")
    identities = _identities(settings, archive, identity)
    schema = entry["schema"]
    with _locked(backup_dir(settings)), _connect(settings) as primary, \
            placement.Connections(settings, primary) as servers:
        try:
            server = placement.member_server(primary, slug)
        except placement.PlacementError:
            raise BackupError(f"no member {slug!r} in the catalogue: run `hypervision tenants"
                              " apply` to re-create it, then restore again") from None
        conn = servers.get(server)
        if server != entry.get("server"):
            log(f"= {slug} was on {entry.get('server') or 'the primary'} when archived;"
                f" restored where it is now, {server or 'the primary'}")
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if exists.fetchone() is None:
            raise BackupError(f"schema {schema} does not exist: run `hypervision tenants apply`"
                              " to re-create the member's empty schema, then restore again")
        live = {r[0] for r in conn.execute(
            "SELECT version FROM hv.schema_migrations WHERE schema_name = %s", (schema,))}
        missing = sorted(set(entry["migrations"]) - live)
        if missing:
            raise BackupError(f"{schema} lacks migrations {missing} that the archive had:"
                              " run `hypervision migrate` first")
        live_tables = {name for name, _ in _member_tables(conn, schema)}
        for extra in sorted(live_tables - {t["name"] for t in entry["tables"]}):
            log(f"= {schema}.{extra}: not in the archive, left as it is")
        total = 0
        # The rows commit on the member's server just before the audit entry on the primary.
        with placement.transaction(primary, conn):
            conn.execute("SET LOCAL session_replication_role = replica")
            names = sql.SQL(", ").join(
                sql.Identifier(schema, t["name"]) for t in entry["tables"])
            if entry["tables"]:
                conn.execute(sql.SQL("TRUNCATE {}").format(names))
            for table in entry["tables"]:
                total += _copy_table_in(conn, archive.path / table["file"], schema, table,
                                        identities)
                log(f"+ {schema}.{table['name']}: {table['rows']} rows")
            for sequence in entry["sequences"]:
                if sequence["last_value"] is not None:
                    conn.execute("SELECT setval(%s, %s, true)",
                                 (f"{_quote(schema)}.{_quote(sequence['name'])}",
                                  sequence["last_value"]))
            for (view,) in conn.execute(
                    "SELECT matviewname FROM pg_matviews WHERE schemaname = %s", (schema,)
            ).fetchall():
                conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(
                    sql.Identifier(schema, view)))
            # Triggers on again: the audit trail's own trigger chains the entry.
            conn.execute("SET LOCAL session_replication_role = origin")
            if entry.get("instance") != dump.schema_instance(conn, schema).id:
                # Archived from another copy (before a move, or of a schema since made
                # again): its transaction ids mean nothing here. Stamped again by their
                # trigger, the rows count as new for the next incremental export.
                for table in entry["tables"]:
                    if "ingested_xid" in table["columns"]:
                        conn.execute(sql.SQL("UPDATE {} SET ingested_xid = 0").format(
                            sql.Identifier(schema, table["name"])))
                log(f"= {schema}: archived from another copy of the schema; its rows are"
                    " new for incremental exports")
            _audit(primary, slug, "backup.restore_member", archive, total)
    return total


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _copy_table_in(conn: psycopg.Connection, file: Path, schema: str,
                   table: dict[str, Any], identities: list[Any]) -> int:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table["columns"])
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table["name"]), columns)
    with contextlib.ExitStack() as stack:
        if identities:
            plain = stack.enter_context(age.decrypting(file, identities))
            source = stack.enter_context(gzip.GzipFile(fileobj=plain, mode="rb"))
        else:
            source = stack.enter_context(gzip.open(file, "rb"))
        with conn.cursor() as cur:
            with cur.copy(query) as copy:
                while block := source.read(dump.CHUNK):
                    copy.write(block)
            return cur.rowcount


def _audit(conn: psycopg.Connection, member: str | None, action: str, archive: Archive,
           rows: int | None, source: str = "cli") -> None:
    """Backups read every member's data and restores change it: both are audited."""
    from hypervision import audit

    if conn.execute("SELECT to_regclass('hv.audit_log')").fetchone() == (None,):
        return
    actor = "system:backup" if source == "job" else audit.cli_actor()
    audit.record(conn, actor=actor, member=member, action=action, target=archive.name,
                 params={"archive": str(archive.path)}, rows=rows, source=source)


# Restoring whole databases --------------------------------------------------------------


def restore_databases(settings: Settings, archive: Archive, *, log: Log = _quiet,
                      identity: Path | None = None) -> list[str]:
    """Restore every database of a full archive; the live ones are kept aside, renamed.

    For each database of the archive:
    1. Check every file against SHA256SUMS; create the roles the server lacks.
    2. Create `<name>_restore_<stamp>`; with TimescaleDB, create the extension at the
       archived version and call timescaledb_pre_restore().
    3. pg_restore (stopping at the first error), then timescaledb_post_restore(); give
       the database its archived owner, privileges and settings.
    4. Swap: forbid new connections to the live database, end the open ones, rename it
       `<name>_before_<stamp>`, and rename the restored one to `<name>`.
    Returns the names the live databases were kept under.
    """
    if archive.scope != "full":
        raise BackupError(f"archive {archive.name} holds one member only: restore it with"
                          f" --member {archive.members[0]}")
    problems = verify(archive)
    if problems:
        raise BackupError(f"archive {archive.name} is damaged: {'; '.join(problems)}")
    identities = _identities(settings, archive, identity)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    kept = []
    with _locked(backup_dir(settings)), _connect(settings, "postgres") as conn, \
            tempfile.TemporaryDirectory(prefix="hv-restore-") as plain_dir:
        _create_missing_roles(conn, archive.manifest, log)
        for facts in archive.manifest["databases"]:
            name = facts["name"]
            staging = f"{name}_restore_{stamp}"
            dump_file = archive.path / facts["file"]
            if identities:
                # pg_restore reads a custom-format dump by seeking: it gets a plain copy
                # in a private temporary folder, off the backup volume, removed after.
                log(f"+ decrypting {facts['file']}")
                dump_file = Path(plain_dir) / f"{name}.dump"
                try:
                    age.decrypt_to(archive.path / facts["file"], dump_file, identities)
                except age.EncryptionError as exc:
                    raise BackupError(str(exc)) from None
            _restore_into(settings, conn, archive, facts, staging, dump_file, log)
            before = f"{name}_before_{stamp}"
            if _swap(conn, name, staging, before):
                kept.append(before)
                log(f"= the database as it was is kept as {before}")
            log(f"+ {name} restored from {archive.name}")
    elsewhere = [f"{m['slug']} (on {m['server']})" for m in archive.manifest["members"]
                 if m.get("server")]
    if elsewhere:
        log(f"= members on other servers are not in the database dump and were left as they"
            f" are: {', '.join(elsewhere)}; restore each one's rows from this archive with"
            " --member SLUG")
    with _connect(settings) as conn, conn.transaction():
        _audit(conn, None, "backup.restore", archive, None)
    return kept


def _create_missing_roles(conn: psycopg.Connection, manifest: dict[str, Any], log: Log) -> None:
    existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    created = set()
    for role in manifest["roles"]:
        if role["name"] in existing:
            continue
        options = [
            "SUPERUSER" if role["superuser"] else "NOSUPERUSER",
            "INHERIT" if role["inherit"] else "NOINHERIT",
            "CREATEROLE" if role["createrole"] else "NOCREATEROLE",
            "CREATEDB" if role["createdb"] else "NOCREATEDB",
            "LOGIN" if role["login"] else "NOLOGIN",
            "BYPASSRLS" if role["bypassrls"] else "NOBYPASSRLS",
        ]
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(role["name"]), sql.SQL(" ".join(options))))
        created.add(role["name"])
        log(f"+ role {role['name']} (its password: run `hypervision tenants apply`)")
    for grant in manifest["memberships"]:
        if grant["role"] in created or grant["member"] in created:
            conn.execute(sql.SQL("GRANT {} TO {}{}").format(
                sql.Identifier(grant["role"]), sql.Identifier(grant["member"]),
                sql.SQL(" WITH ADMIN OPTION" if grant["admin"] else "")))


def _restore_into(settings: Settings, conn: psycopg.Connection, archive: Archive,
                  facts: dict[str, Any], staging: str, dump_file: Path, log: Log) -> None:
    log(f"+ database {staging}")
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(staging), sql.Identifier(facts["owner"])))
    try:
        version = facts.get("timescaledb")
        if version:
            with _connect(settings, staging) as target:
                target.execute(sql.SQL("CREATE EXTENSION timescaledb VERSION {}").format(
                    sql.Literal(version)))
                target.execute("SELECT timescaledb_pre_restore()")
        log(f"+ pg_restore {facts['file']}")
        _run_pg(settings, "pg_restore", ["--exit-on-error", "--no-password", str(dump_file)],
                staging)
        if version:
            with _connect(settings, staging) as target:
                target.execute("SELECT timescaledb_post_restore()")
        _apply_database_facts(conn, staging, facts)
    except BaseException:
        _drop_database(conn, staging)
        raise


def _apply_database_facts(conn: psycopg.Connection, name: str, facts: dict[str, Any]) -> None:
    db = sql.Identifier(name)
    unknown = {i["privilege"] for i in facts["acl"]} - DATABASE_PRIVILEGES
    if unknown:
        raise BackupError(f"unexpected database privileges in the manifest: {sorted(unknown)}")
    if not facts["default_acl"]:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        for item in facts["acl"]:
            grantee = (sql.SQL("PUBLIC") if item["grantee"] == "PUBLIC"
                       else sql.Identifier(item["grantee"]))
            conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(item["privilege"]), db, grantee,
                sql.SQL(" WITH GRANT OPTION" if item["grantable"] else "")))
    for setting in facts["settings"]:
        key, _, value = setting.partition("=")
        conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            db, sql.Identifier(*key.split(".")), sql.Literal(value)))


def _drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _swap(conn: psycopg.Connection, name: str, staging: str, before: str) -> bool:
    """Put `staging` in place of `name`; True if a live `name` was kept as `before`."""
    live = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if live is not None:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        _rename_when_free(conn, name, before)
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
            sql.Identifier(before)))
    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
        sql.Identifier(staging), sql.Identifier(name)))
    return live is not None


def _rename_when_free(conn: psycopg.Connection, name: str, new_name: str) -> None:
    """Rename a database once its terminated sessions are gone (they exit asynchronously)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(new_name)))
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise BackupError(f"database {name} is still in use; stop the platform's"
                                  " services and restore again") from None
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            time.sleep(0.2)
