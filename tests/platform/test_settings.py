"""Settings fail fast: required secrets, placeholders refused, *_FILE variants."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hypervision.settings import Settings


def test_it_refuses_a_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(secret_key="changeme" + " " * 30)


def test_it_refuses_a_short_secret() -> None:
    with pytest.raises(ValidationError):
        Settings(secret_key="short")


def test_it_reads_a_secret_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("f" * 64 + "\n")
    monkeypatch.delenv("HV_SECRET_KEY")
    monkeypatch.setenv("HV_SECRET_KEY_FILE", str(secret))
    assert Settings().secret_key.get_secret_value() == "f" * 64


def test_role_passwords_are_random_per_role_and_independent_of_the_secret(
    tmp_path: Path,
) -> None:
    a = Settings(secret_key="a" * 64, data_dir=tmp_path)
    b = Settings(secret_key="b" * 64, data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="no password for database role alpha_reader"):
        a.role_password("alpha_reader")
    first = a.ensure_role_password("alpha_reader")
    assert first != a.ensure_role_password("beta_reader")
    assert b.role_password("alpha_reader") == first == a.ensure_role_password("alpha_reader")
    with pytest.raises(ValueError):
        a.role_password("../etc/passwd")
    assert "a" * 64 not in repr(a)
