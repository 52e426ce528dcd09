"""Reversibility: a member leaves with everything it owns, and can be restored elsewhere.

`export_member` writes one archive (.tar, .tar.gz or .zip) holding:

    manifest.json            format, version, member, counts, time ranges, SHA-256 per file
    tenant.yaml              the member's declaration (identity, contacts, devices...)
    member.json              the member's catalogue row (hv.members)
    devices.jsonl            every device it ever declared (hv.devices), removed ones too
    uplinks.jsonl            raw uplinks, each as ChirpStack sent it (JSON Lines)
    data/uplinks.parquet     the platform's columns of those uplinks, in the same order
    data/<table>.parquet     every other table of its schema: measurements, device_events,
                             device_state, and whatever later migrations add
    audit.jsonl              its audit trail (hv.audit_log), hash chain included
    dashboards/...           its dashboards, from each source in DASHBOARD_SOURCES

Everything is read in one REPEATABLE READ snapshot, so the files agree with each other.
Files are written to a temporary folder first (streamed, constant memory), hashed, then
packed. `manifest.json` lists every file with its SHA-256; its own SHA-256 is the
archive's fingerprint, printed by the CLI, for whoever receives the archive to check.

`import_member` refuses an archive whose files do not match their manifest (or whose
manifest does not match the fingerprint given), whose tables name files the manifest does
not verify, that is larger than HV_IMPORT_MAX_BYTES, that declares a syndicate or operator
accounts, or whose slug is a member of this instance not itself imported from an archive
of the same member (docs/security.md); nothing is written before these checks pass. It
then applies the declaration through
hypervision.tenancy (schema, roles, devices), then restores every table with
INSERT ... ON CONFLICT DO NOTHING: importing twice changes nothing. The archived audit
trail stays in the archive (its chain belongs to the instance that wrote it); the import
itself is audited. See platform/hypervision/export/README.md, "Reversibility".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from psycopg import sql
from psycopg.types.json import Jsonb

from hypervision import dump, placement
from hypervision.settings import REPO_ROOT, Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import SLUG, TenantSpec
from ingest.decode import Catalogue

FORMAT = "hypervision-tenant-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH_ROWS = 20_000
ROW_GROUP_ROWS = 128 * 1024
# Platform bookkeeping, not member data: the next instance stamps its own (migration 0020).
SKIP_COLUMNS = {"ingested_xid"}
# Uplinks: the event goes to uplinks.jsonl, the other columns to data/uplinks.parquet.
EVENTS_FILE = "uplinks.jsonl"
# Every table of the member's schema is archived; these are restored. The others are
# rebuilt by their own jobs from these (rollups, analytics copies of the declaration) or
# hold this instance's state (refresh cursors, a notification outbox, which a restore
# would send again): they stay in the archive for the member. A table whose rows are
# source data joins this list, with a unique key so that a second import adds nothing.
RESTORED_TABLES = ("uplinks", "measurements", "device_events", "device_state", "downlinks")

Progress = Callable[[str, int, int | None], None]
"""progress(step, rows done, rows expected or None)."""


class ArchiveError(Exception):
    """The archive cannot be written, read or restored; the message says why."""


def _quiet(step: str, done: int, total: int | None) -> None:
    """The default progress: say nothing."""


# Dashboards ---------------------------------------------------------------------------

DashboardSource = Callable[[Settings, str], Iterable[tuple[str, Path]]]


def dashboards_folder(settings: Settings, slug: str) -> Iterator[tuple[str, Path]]:
    """Files under dashboards/export/<slug>/ (what a Superset export leaves there)."""
    root = REPO_ROOT / "dashboards" / "export" / slug
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                yield path.relative_to(root).as_posix(), path


def dashboard_templates(settings: Settings, slug: str) -> Iterator[tuple[str, Path]]:
    """The templates every member's Superset dashboards are built from (dashboards/*.yaml:
    datasets, charts, layouts, in YAML), so the archive says what the dashboards showed."""
    root = REPO_ROOT / "dashboards"
    for path in sorted(root.glob("*.yaml")):
        yield f"templates/{path.name}", path


# Where dashboards come from: add a source (e.g. a live Superset export) to this list.
DASHBOARD_SOURCES: list[DashboardSource] = [dashboards_folder, dashboard_templates]


# The member's declaration ---------------------------------------------------------------


def load_member(conn: psycopg.Connection, slug: str) -> TenantSpec:
    """The member's declaration as this instance holds it: its catalogue row and its
    active devices. Raises ArchiveError for an unknown member."""
    row = conn.execute("SELECT spec FROM hv.members WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise ArchiveError(f"no member named {slug!r} in this database")
    devices = conn.execute(
        "SELECT spec FROM hv.devices WHERE member_slug = %s AND active ORDER BY dev_eui",
        (slug,),
    ).fetchall()
    return TenantSpec.model_validate({**row[0], "devices": [d[0] for d in devices]})


def spec_yaml(spec: TenantSpec) -> str:
    body = spec.model_dump(mode="json", exclude_defaults=True)
    head = {"version": body.pop("version"), "kind": body.pop("kind"), "name": body.pop("name")}
    return yaml.safe_dump({**head, **body}, sort_keys=False, allow_unicode=True)


# Tables and their Parquet types -----------------------------------------------------

_ARROW: dict[str, pa.DataType] = {
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(),
    "text": pa.string(),
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "bytea": pa.binary(),
    "text[]": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class TableColumn:
    name: str
    pg_type: str

    @property
    def arrow(self) -> pa.DataType:
        # Anything else (uuid, json, jsonb, numeric...) travels as its exact text form.
        return _ARROW.get(self.pg_type, pa.string())

    def select(self) -> sql.Composable:
        if self.pg_type in _ARROW:
            return sql.Identifier(self.name)
        return sql.SQL("{}::text").format(sql.Identifier(self.name))


def member_tables(conn: psycopg.Connection, schema: str) -> dict[str, list[TableColumn]]:
    """Every table of the member's schema with its columns, in column order
    (hypervision.dump.schema_tables), platform bookkeeping aside."""
    return {table: [TableColumn(name, pg_type) for name, pg_type in columns
                    if name not in SKIP_COLUMNS]
            for table, columns in dump.schema_tables(conn, schema).items()}


# Writing an archive ------------------------------------------------------------------


@dataclass
class Manifest:
    member: str
    created_at: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    time_range: dict[str, list[str | None]] = field(default_factory=dict)
    platform_version: str = ""

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "member": self.member,
            "created_at": self.created_at,
            "platform_version": self.platform_version,
            "counts": self.counts,
            "time_range": self.time_range,
            "tables": self.tables,
            "files": self.files,
        }
        return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"{MANIFEST} is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ArchiveError(f"not a Hypervision member archive ({MANIFEST} format)")
        if body.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(f"archive format version {body.get('format_version')!r} is not"
                               f" supported (this platform reads version {FORMAT_VERSION})")
        try:
            return cls(
                member=str(body["member"]), created_at=str(body["created_at"]),
                files=dict(body["files"]), tables=dict(body["tables"]),
                counts=dict(body["counts"]), time_range=dict(body["time_range"]),
                platform_version=str(body.get("platform_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"{MANIFEST} lacks a field: {exc}") from None


def _platform_version() -> str:
    try:
        return metadata.version("hypervision")
    except metadata.PackageNotFoundError:
        return "unknown"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


class _TableWriter:
    """Streams one table into data/<table>.parquet (and, for uplinks, uplinks.jsonl)."""

    def __init__(self, folder: Path, table: str, columns: list[TableColumn],
                 events: bool) -> None:
        self.columns = [c for c in columns if not (events and c.name == "event")]
        self.schema = pa.schema([pa.field(c.name, c.arrow) for c in self.columns])
        (folder / "data").mkdir(exist_ok=True)
        self.writer = pq.ParquetWriter(folder / "data" / f"{table}.parquet", self.schema,
                                       compression="zstd")
        self.events = (folder / EVENTS_FILE).open("w", encoding="utf-8") if events else None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self.events is not None:
            for row in rows:
                self.events.write(_one_line(row[-1]))
                self.events.write("\n")
            rows = [row[:-1] for row in rows]
        arrays = [pa.array(list(values), type=f.type)
                  for values, f in zip(zip(*rows, strict=True), self.schema, strict=True)]
        self.pending.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.pending_rows += len(rows)
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema),
                                    row_group_size=self.pending_rows)
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
        if self.events is not None:
            self.events.close()


def _one_line(event: str) -> str:
    """A stored event as one JSON Lines record (ChirpStack sends one line already)."""
    if "\n" in event or "\r" in event:
        return json.dumps(json.loads(event), ensure_ascii=False, separators=(",", ":"))
    return event


def _dump_tables(conn: psycopg.Connection, schema: str, folder: Path, manifest: Manifest,
                 progress: Progress) -> None:
    for table, columns in member_tables(conn, schema).items():
        events = table == "uplinks" and any(c.name == "event" for c in columns)
        ordered = [c for c in columns if not (events and c.name == "event")]
        selected = [c.select() for c in ordered]
        if events:
            selected.append(sql.SQL("event::text"))
        ident = sql.Identifier(schema, table)
        count_row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
        total = int(count_row[0]) if count_row else 0
        writer = _TableWriter(folder, table, columns, events)
        done = 0
        progress(table, 0, total)
        with conn.cursor(name=f"hv_archive_{table}", binary=True) as cur:
            cur.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected), ident))
            while batch := cur.fetchmany(BATCH_ROWS):
                writer.write(batch)
                done += len(batch)
                progress(table, done, total)
        writer.close()
        manifest.counts[table] = done
        manifest.tables[table] = {
            "file": f"data/{table}.parquet",
            "columns": [[c.name, c.pg_type] for c in ordered],
            **({"events": EVENTS_FILE} if events else {}),
        }
        if any(c.name == "time" and c.pg_type.startswith("timestamp") for c in columns):
            low, high = conn.execute(
                sql.SQL("SELECT min(time), max(time) FROM {}").format(ident)).fetchone() or (
                None, None)
            manifest.time_range[table] = [_iso(low), _iso(high)]


def _dump_catalogue(conn: psycopg.Connection, slug: str, folder: Path, spec: TenantSpec,
                    manifest: Manifest) -> None:
    (folder / "tenant.yaml").write_text(spec_yaml(spec), encoding="utf-8")
    member = conn.execute("SELECT to_jsonb(m) FROM hv.members m WHERE slug = %s",
                          (slug,)).fetchone()
    (folder / "member.json").write_text(
        json.dumps(member[0] if member else {}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8")
    count = 0
    with (folder / "devices.jsonl").open("w", encoding="utf-8") as out:
        for (device,) in conn.execute(
            "SELECT to_jsonb(d) FROM hv.devices d WHERE member_slug = %s ORDER BY dev_eui",
            (slug,),
        ):
            out.write(json.dumps(device, ensure_ascii=False) + "\n")
            count += 1
    manifest.counts["devices"] = count
    # The audit trail, once hv.audit_log exists (control migration 0010).
    has_audit = conn.execute("SELECT to_regclass('hv.audit_log') IS NOT NULL").fetchone()
    count = 0
    with (folder / "audit.jsonl").open("w", encoding="utf-8") as out:
        if has_audit and has_audit[0]:
            with conn.cursor(name="hv_archive_audit") as cur:
                cur.execute("SELECT to_jsonb(a) FROM hv.audit_log a WHERE member_slug = %s"
                            " ORDER BY id", (slug,))
                for (entry,) in cur:
                    out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    count += 1
    manifest.counts["audit"] = count


def _dump_dashboards(settings: Settings, slug: str, folder: Path, manifest: Manifest) -> None:
    count = 0
    for source in DASHBOARD_SOURCES:
        for name, path in source(settings, slug):
            target = folder / "dashboards" / _safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            count += 1
    manifest.counts["dashboards"] = count


def _pack(folder: Path, manifest_bytes: bytes, out: Path, names: list[str]) -> None:
    """Write the archive; its type follows the file name (.zip, .tar.gz/.tgz, else .tar)."""
    suffix = "".join(out.suffixes[-2:]).lower()
    partial = out.with_name(out.name + ".partial")
    if out.suffix.lower() == ".zip":
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, manifest_bytes)
            for name in names:
                z.write(folder / name, name)
    else:
        gzipped = suffix in (".tar.gz",) or out.suffix.lower() == ".tgz"
        with tarfile.open(partial, "w:gz" if gzipped else "w") as t:
            (folder / MANIFEST).write_bytes(manifest_bytes)
            t.add(folder / MANIFEST, MANIFEST, recursive=False)
            for name in names:
                t.add(folder / name, name, recursive=False)
    partial.replace(out)


@dataclass
class ExportResult:
    archive: Path
    fingerprint: str
    manifest: Manifest


def export_member(conn: psycopg.Connection, settings: Settings, slug: str, out: Path,
                  progress: Progress = _quiet) -> ExportResult:
    """Write the member's archive to `out`. `conn` is a superuser connection to the
    primary outside any transaction; it reads everything in one snapshot, except for a
    member on another database server (hypervision.placement), whose tables are read in
    a snapshot of that server, just after the catalogue's."""
    spec = load_member(conn, slug)
    server = placement.member_server(conn, slug)
    manifest = Manifest(member=slug, created_at=datetime.now(UTC).isoformat(),
                        platform_version=_platform_version())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hv-archive-", dir=out.parent) as tmp:
        folder = Path(tmp)
        with dump.snapshot(conn):
            conn.execute("SET LOCAL TimeZone = 'UTC'")
            _dump_catalogue(conn, slug, folder, spec, manifest)
            if server is None:
                _dump_tables(conn, spec.schema, folder, manifest, progress)
        if server is not None:
            with placement.connect_admin(settings, server) as remote, dump.snapshot(remote):
                remote.execute("SET LOCAL TimeZone = 'UTC'")
                _dump_tables(remote, spec.schema, folder, manifest, progress)
        _dump_dashboards(settings, slug, folder, manifest)
        names = dump.folder_files(folder)
        for name in names:
            path = folder / name
            manifest.files[name] = {"sha256": dump.file_sha256(path),
                                    "bytes": path.stat().st_size}
        data = manifest.to_json()
        progress("packing", 0, None)
        _pack(folder, data, out, names)
    return ExportResult(out, hashlib.sha256(data).hexdigest(), manifest)


# Reading and checking an archive --------------------------------------------------------

_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _safe_name(name: str) -> str:
    """A relative POSIX path without `..`, absolute parts or odd characters."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(not _SAFE.match(p) for p in path.parts):
        raise ArchiveError(f"refusing a file with an unsafe name in the archive: {name!r}")
    return path.as_posix()


def _members(archive: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(name, open) for every regular file of a tar or zip archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, functools.partial(z.open, info)
        return
    try:
        with tarfile.open(archive, "r:*") as t:
            for member in t:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ArchiveError(f"refusing a link or device in the archive: {member.name}")
                yield member.name, functools.partial(t.extractfile, member)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{archive}: not a readable tar or zip archive ({exc})") from None


@dataclass
class OpenedArchive:
    manifest: Manifest
    fingerprint: str
    folder: Path


def open_archive(archive: Path, into: Path, fingerprint: str | None = None,
                 max_bytes: int | None = None) -> OpenedArchive:
    """Extract the archive into `into` and check it: every file listed in the manifest,
    with its size and SHA-256, and nothing else; at most `max_bytes` extracted in all
    (counted while extracting, so a compressed bomb stops at the cap). Raises
    ArchiveError naming the problem."""
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such file")
    manifest_bytes: bytes | None = None
    extracted: dict[str, tuple[str, int]] = {}
    total = 0

    def count(n: int) -> None:
        nonlocal total
        total += n
        if max_bytes is not None and total > max_bytes:
            raise ArchiveError(f"{archive}: the archive is larger than the {max_bytes} bytes"
                               " allowed (HV_IMPORT_MAX_BYTES); refusing it")

    for name, opener in _members(archive):
        if name == MANIFEST:
            with opener() as f:
                manifest_bytes = f.read(16 << 20)
            count(len(manifest_bytes))
            continue
        safe = _safe_name(name)
        if safe in extracted:
            raise ArchiveError(f"the archive holds {safe} twice")
        target = into / safe
        target.parent.mkdir(parents=True, exist_ok=True)
        h, size = hashlib.sha256(), 0
        with opener() as src, target.open("wb") as dst:
            while block := src.read(dump.CHUNK):
                count(len(block))
                h.update(block)
                size += len(block)
                dst.write(block)
        extracted[safe] = (h.hexdigest(), size)
    if manifest_bytes is None:
        raise ArchiveError(f"{archive}: no {MANIFEST}: not a Hypervision member archive")
    actual = hashlib.sha256(manifest_bytes).hexdigest()
    if fingerprint is not None and actual != fingerprint.strip().lower():
        raise ArchiveError(f"the manifest's SHA-256 is {actual}, not the expected fingerprint:"
                           " the archive was altered (or is another one)")
    manifest = Manifest.from_json(manifest_bytes)
    problems = []
    for name, entry in sorted(manifest.files.items()):
        if name not in extracted:
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        digest, size = extracted[name]
        if digest != entry.get("sha256") or size != entry.get("bytes"):
            problems.append(f"{name}: content does not match its SHA-256 in the manifest")
    for name in sorted(set(extracted) - set(manifest.files)):
        problems.append(f"{name}: not listed in the manifest")
    # The tables' files are read by the names the manifest gives them: each must be one
    # of the files just verified, never a path of its own (`../..` to a file of this host).
    for table, entry in sorted(manifest.tables.items()):
        for key in ("file", "events"):
            listed: str | None = entry.get(key) if isinstance(entry, dict) else None
            if (key == "file" or listed) and listed not in manifest.files:
                problems.append(f"table {table}: {key} {listed!r} is not a file the manifest"
                                " verifies")
    if problems:
        raise ArchiveError("the archive was tampered with or damaged; refusing it:\n  "
                           + "\n  ".join(problems))
    return OpenedArchive(manifest, actual, into)


# Restoring --------------------------------------------------------------------------


@dataclass
class ImportResult:
    slug: str
    fingerprint: str
    inserted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)


def _renamed(spec_text: str, slug: str | None) -> TenantSpec:
    try:
        body = yaml.safe_load(spec_text)
        if slug is not None:
            body["name"] = slug
        return TenantSpec.model_validate(body)
    except Exception as exc:
        raise ArchiveError(f"tenant.yaml in the archive is not a valid declaration: {exc}"
                           ) from None


def _check_declaration(conn: psycopg.Connection, spec: TenantSpec, manifest: Manifest,
                       fingerprint: str) -> None:
    """What an archive may not bring: a syndicate or operator accounts (powers over every
    member, declared in tenants/ only), or the slug of a member of this instance, unless
    that member was itself imported from an archive of the same member."""
    if spec.identity.kind == "syndicate":
        raise ArchiveError(f"the archive declares {spec.name} a syndicate: a syndicate is"
                           " declared in tenants/, never imported; refusing it")
    operators = [u.email for u in spec.users if u.operator]
    if operators:
        raise ArchiveError(f"the archive declares operator accounts ({', '.join(operators)}):"
                           " operators are declared in tenants/, never imported; refusing it")
    exists = conn.execute("SELECT 1 FROM hv.members WHERE slug = %s", (spec.name,)).fetchone()
    if exists is None:
        return
    imported = conn.execute(
        "SELECT 1 FROM hv.member_imports WHERE member_slug = %s AND source_member = %s",
        (spec.name, manifest.member)).fetchone()
    if imported is None:
        raise ArchiveError(f"{spec.name} is already a member here: an archive cannot be"
                           " imported over it; import it under another slug (--as)")


def _check_devices(conn: psycopg.Connection, spec: TenantSpec) -> None:
    taken = conn.execute(
        "SELECT dev_eui, member_slug FROM hv.devices WHERE dev_eui = ANY(%s)"
        " AND member_slug <> %s ORDER BY dev_eui",
        ([d.dev_eui for d in spec.devices], spec.name),
    ).fetchall()
    if taken:
        listed = ", ".join(f"{eui} (member {owner})" for eui, owner in taken[:10])
        raise ArchiveError(f"devices of this archive belong to another member here: {listed};"
                           " a DevEUI belongs to one member: import into another instance")


def _restore_devices(conn: psycopg.Connection, folder: Path, slug: str) -> int:
    """Devices the member had removed come back as removed (their data is restored)."""
    count = 0
    known = {r[0] for r in conn.execute("SELECT id FROM hv.device_models").fetchall()}
    with (folder / "devices.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("active", True) or d.get("model_id") not in known:
                continue
            cur = conn.execute(
                "INSERT INTO hv.devices (dev_eui, member_slug, model_id, name, variables, spec,"
                " active) VALUES (%s, %s, %s, %s, %s, %s, false) ON CONFLICT DO NOTHING",
                (d["dev_eui"], slug, d["model_id"], d["name"], Jsonb(d.get("variables") or {}),
                 Jsonb(d.get("spec") or {})),
            )
            count += cur.rowcount
    # The public ids come back too, so the QR labels stuck on the devices still lead to
    # their pages (unless this instance already gave the id to another device).
    with (folder / "devices.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("public_id"):
                conn.execute(
                    "UPDATE hv.devices SET public_id = %(pid)s"
                    " WHERE dev_eui = %(eui)s AND member_slug = %(slug)s"
                    " AND NOT EXISTS (SELECT 1 FROM hv.devices WHERE public_id = %(pid)s)",
                    {"pid": d["public_id"], "eui": d["dev_eui"], "slug": slug},
                )
    return count


def _unique_key(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND i.indisunique)",
        (schema, table),
    ).fetchone()
    return bool(row and row[0])


def _has_rows(conn: psycopg.Connection, ident: sql.Composable) -> bool:
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(ident)).fetchone()
    return bool(row and row[0])


def _restore_table(conn: psycopg.Connection, schema: str, table: str, entry: dict[str, Any],
                   folder: Path, expected: int, progress: Progress,
                   result: ImportResult) -> None:
    here = {c.name: c for c in member_tables(conn, schema).get(table, [])}
    if not here:
        raise ArchiveError(f"table {table} of the archive does not exist here: is this"
                           " instance's platform older than the archive's?")
    columns = [name for name, _ in entry["columns"]]
    if entry.get("events"):
        columns.append("event")
    unknown = [c for c in columns if c not in here]
    if unknown:
        raise ArchiveError(f"{table}: column(s) {', '.join(unknown)} of the archive do not exist"
                           " here: is this instance's platform older than the archive's?")
    ident = sql.Identifier(schema, table)
    # Without a unique key, ON CONFLICT cannot make a second import harmless: such a table
    # is restored only into an empty one.
    if not _unique_key(conn, schema, table) and _has_rows(conn, ident):
        result.skipped[table] = "has no unique key and already holds rows"
        return
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    stage = sql.Identifier(f"hv_restore_{table}")
    with conn.transaction():
        conn.execute(sql.SQL(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
        ).format(stage, cols, ident))
        events = (folder / entry["events"]).open(encoding="utf-8") if entry.get("events") else None
        with ExitStack() as files:
            if events is not None:
                files.enter_context(events)
            parquet = pq.ParquetFile(folder / entry["file"])
            done = inserted = 0
            progress(table, 0, expected)
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                data = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                if events is not None:
                    data.append([next(events).rstrip("\n") for _ in range(batch.num_rows)])
                with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)
                ) as copy:
                    for row in zip(*data, strict=True):
                        copy.write_row(row)
                cur = conn.execute(sql.SQL(
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}"
                    " ON CONFLICT DO NOTHING"
                ).format(ident, cols, cols, stage))
                inserted += max(cur.rowcount, 0)
                conn.execute(sql.SQL("TRUNCATE {}").format(stage))
                done += batch.num_rows
                progress(table, done, expected)
            if events is not None and next(events, None) is not None:
                raise ArchiveError(f"{entry['events']} holds more lines than {entry['file']} rows")
    result.inserted[table] = inserted


def _advance_sequences(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Restored ids came from the archive: move each serial or identity sequence past
    them, so that the next row this instance writes does not collide."""
    qualified = sql.Identifier(schema, table).as_string(conn)
    for column, sequence in conn.execute(
        "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL",
        (qualified, qualified, qualified),
    ).fetchall():
        # `sequence` comes quoted from the catalogue.
        conn.execute(
            sql.SQL("SELECT setval(%s, greatest((SELECT max({c}) FROM {t}),"
                    " (SELECT last_value FROM {s})))").format(
                c=sql.Identifier(column), t=sql.Identifier(schema, table),
                s=sql.SQL(sequence)),
            (sequence,),
        )


def import_member(conn: psycopg.Connection, settings: Settings, archive: Path, *,
                  as_slug: str | None = None, fingerprint: str | None = None,
                  progress: Progress = _quiet, log: Callable[[str], None] = lambda _: None,
                  ) -> ImportResult:
    """Check the archive, apply its member (as `as_slug` if given), restore its data.
    `conn` is a superuser connection in autocommit mode. Idempotent."""
    if as_slug is not None and not re.match(SLUG, as_slug):
        raise ArchiveError(f"{as_slug!r} is not a valid member slug")
    if conn.execute("SELECT to_regclass('hv.members') IS NULL").fetchone() == (True,):
        raise ArchiveError("this database has no platform catalogue: run `hypervision migrate`")
    with tempfile.TemporaryDirectory(prefix="hv-import-") as tmp:
        opened = open_archive(archive, Path(tmp), fingerprint, settings.import_max_bytes)
        folder, manifest = opened.folder, opened.manifest
        spec = _renamed((folder / "tenant.yaml").read_text(encoding="utf-8"), as_slug)
        result = ImportResult(spec.name, opened.fingerprint)
        _check_declaration(conn, spec, manifest, opened.fingerprint)
        _check_devices(conn, spec)
        try:
            catalogue = Catalogue.load_with_operator(settings.catalogue_dir)
            steps = tenancy.apply(conn, [spec], catalogue, settings, log=log)
        except ValueError as exc:
            raise ArchiveError(f"cannot declare member {spec.name}: {exc}") from None
        result.steps = [str(s) for s in steps if s.symbol != "="]
        conn.execute("INSERT INTO hv.member_imports (member_slug, source_member, fingerprint)"
                     " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                     (spec.name, manifest.member, opened.fingerprint))
        with conn.transaction():
            result.inserted["devices (removed)"] = _restore_devices(conn, folder, spec.name)
        # The member's tables where its schema is: the server its file names, if any.
        with placement.Connections(settings, conn) as servers:
            db = servers.get(placement.member_server(conn, spec.name))
            for table, entry in manifest.tables.items():
                if table not in RESTORED_TABLES:
                    result.skipped[table] = "kept in the archive: derived data or instance state"
                    continue
                _restore_table(db, spec.schema, table, entry, folder,
                               int(manifest.counts.get(table, 0)), progress, result)
                _advance_sequences(db, spec.schema, table)
        dashboards = folder / "dashboards"
        if dashboards.is_dir():
            # Superset import comes with the dashboards: until then they stay in the archive.
            result.skipped["dashboards"] = "kept in the archive (no dashboard import yet)"
        return result


def archive_suffix_ok(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tar.gz", ".tgz", ".zip"))


def default_archive_name(slug: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(os.getcwd()) / f"{slug}-{stamp}.tar"
