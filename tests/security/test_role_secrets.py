"""Finding 4: every database role has its own random password, not derived from
HV_SECRET_KEY, given only to the processes that connect with it."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys

import pytest

from hypervision.settings import Settings

pytestmark = pytest.mark.services


def test_each_role_has_its_own_random_password_kept_readable_by_its_owner_only(
    platform_db: Settings,
) -> None:
    folder = platform_db.role_secrets
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    passwords = {}
    for role in ("hv_ingest", "hv_api", "hv_public", "alpha_reader", "beta_reader"):
        path = folder / role
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, role
        passwords[role] = platform_db.role_password(role)
        assert len(passwords[role]) == 64
        derived = hmac.new(platform_db.key(), f"pg-role:{role}".encode(),
                           hashlib.sha256).hexdigest()
        assert passwords[role] != derived
    assert len(set(passwords.values())) == len(passwords)
    # Another HV_SECRET_KEY changes no role's password.
    other = platform_db.model_copy(update={"secret_key": None})
    assert other.role_password("hv_api") == passwords["hv_api"]


def test_each_kind_of_process_gets_only_the_passwords_it_connects_with(
    platform_db: Settings,
) -> None:
    folder = platform_db.role_secrets
    listed = {c: sorted(p.name for p in (folder / c).iterdir())
              for c in ("worker", "api", "superset")}
    assert listed["worker"] == ["hv_ingest"]
    assert {"hv_api", "hv_public", "alpha_reader", "beta_reader"} <= set(listed["api"])
    assert "hv_ingest" not in listed["api"] and "hv_operator_reader" not in listed["api"]
    assert not [r for r in listed["api"] if not (r.endswith("_reader") or r in (
        "hv_api", "hv_public"))]


def test_settings_need_no_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HV_SECRET_KEY")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.secret_key is None
    with pytest.raises(RuntimeError, match="HV_SECRET_KEY is not set"):
        settings.key()


def test_a_worker_reaches_its_role_with_its_folder_only(
    platform_db: Settings,
) -> None:
    env = dict(os.environ)
    env["HV_ROLE_SECRETS_DIR"] = str(platform_db.role_secrets / "worker")
    script = (
        "from hypervision.settings import get_settings\n"
        "from hypervision.db import connect_as\n"
        "s = get_settings()\n"
        "with connect_as(s, 'hv_ingest') as c:\n"
        "    print(c.execute('SELECT current_user').fetchone()[0])\n"
        "try:\n"
        "    s.role_password('alpha_reader')\n"
        "except RuntimeError as e: print('refused:', e)\n"
    )
    os.chmod(platform_db.role_secrets / "worker", 0o500)  # as mounted: read-only
    try:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=120, check=True).stdout
    finally:
        os.chmod(platform_db.role_secrets / "worker", 0o700)
    assert out.splitlines()[0] == "hv_ingest"
    assert "refused: no password for database role alpha_reader" in out
