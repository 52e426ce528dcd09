"""Finding 5: a hostile member archive is refused with a clear error, nothing written:
table files outside the verified list, a slug of an existing member, a syndicate or
operator accounts, an archive over the size cap."""

from __future__ import annotations

import hashlib
import json
import secrets
import tarfile
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hypervision import archive
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from tests.export.test_archive import _rewrite

pytestmark = pytest.mark.services


def _exported(admin: psycopg.Connection, settings: Settings, member: TenantSpec,
              folder: Path) -> Path:
    return archive.export_member(admin, settings, member.name, folder / "a.tar").archive


def _member_of(path: Path) -> tuple[dict, dict]:
    with tarfile.open(path) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
        spec = yaml.safe_load(t.extractfile("tenant.yaml").read())  # type: ignore[union-attr]
    return manifest, spec


def _with_spec(src: Path, dst: Path, change: dict) -> Path:
    """The archive with tenant.yaml changed, and its manifest entry updated to match (as a
    forger would do: the fingerprint is optional)."""
    manifest, spec = _member_of(src)
    spec.update(change)
    text = yaml.safe_dump(spec, allow_unicode=True).encode()
    manifest["files"]["tenant.yaml"] = {"sha256": hashlib.sha256(text).hexdigest(),
                                        "bytes": len(text)}
    _rewrite(src, dst, {"tenant.yaml": text, "manifest.json": json.dumps(manifest).encode()})
    return dst


def _nothing_written(admin: psycopg.Connection, slug: str) -> None:
    assert admin.execute("SELECT count(*) FROM hv.members WHERE slug = %s",
                         (slug,)).fetchone() == (0,)
    assert admin.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                         (f"tenant_{slug}",)).fetchone() == (0,)


def test_a_table_file_outside_the_verified_list_is_refused(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, tmp_path: Path
) -> None:
    src = _exported(admin, platform_db, member, tmp_path)
    # A file of the importing host, named by the manifest but not in the archive.
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"x": [1]}), outside)
    manifest, _ = _member_of(src)
    manifest["tables"]["measurements"]["file"] = "../../" + str(outside).lstrip("/")
    forged = tmp_path / "forged.tar"
    _rewrite(src, forged, {"manifest.json": json.dumps(manifest).encode()})
    slug = f"hostile_{secrets.token_hex(3)}"
    with pytest.raises(archive.ArchiveError, match="not a file the manifest verifies"):
        archive.import_member(admin, platform_db, forged, as_slug=slug)
    _nothing_written(admin, slug)


def test_an_archive_cannot_take_over_an_existing_member(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, tmp_path: Path
) -> None:
    src = _exported(admin, platform_db, member, tmp_path)
    before = admin.execute("SELECT spec FROM hv.members WHERE slug = 'beta'").fetchone()
    for slug in (member.name, "beta"):
        with pytest.raises(archive.ArchiveError, match="already a member here"):
            archive.import_member(admin, platform_db, src, as_slug=slug)
    assert admin.execute("SELECT spec FROM hv.members WHERE slug = 'beta'").fetchone() == before


@pytest.mark.parametrize("change", [
    {"identity": {"name": "Faux syndicat", "kind": "syndicate"}},
    {"users": [{"name": "Mallory", "email": "mallory@example.org", "rights": ["read"],
                "operator": True}]},
], ids=["syndicate", "operator"])
def test_an_archive_cannot_bring_syndicate_powers(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, tmp_path: Path,
    change: dict
) -> None:
    forged = _with_spec(_exported(admin, platform_db, member, tmp_path), tmp_path / "f.tar",
                        change)
    slug = f"hostile_{secrets.token_hex(3)}"
    with pytest.raises(archive.ArchiveError, match=r"syndicate|operator"):
        archive.import_member(admin, platform_db, forged, as_slug=slug)
    _nothing_written(admin, slug)
    assert admin.execute("SELECT count(*) FROM hv.accounts WHERE email = 'mallory@example.org'"
                         ).fetchone() == (0,)


def test_an_archive_over_the_size_cap_is_refused_while_extracting(
    platform_db: Settings, admin: psycopg.Connection, member: TenantSpec, tmp_path: Path
) -> None:
    src = _exported(admin, platform_db, member, tmp_path)
    capped = platform_db.model_copy(update={"import_max_bytes": 4096})
    slug = f"hostile_{secrets.token_hex(3)}"
    with pytest.raises(archive.ArchiveError, match="larger than the 4096 bytes allowed"):
        archive.import_member(admin, capped, src, as_slug=slug)
    _nothing_written(admin, slug)
