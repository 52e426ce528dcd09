"""`hypervision devices import`: a vendor's delivery file (CSV or XLSX) added to a member's
tenant file and to the keys file, plan first, all or nothing."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hypervision.chirpstack.network import load_keys
from hypervision.commands.devices import register
from hypervision.settings import get_settings
from hypervision.tenancy.spec import load_file

runner = CliRunner()
KEY_A = "2b7e151628aed2a6abf7158809cf4f3c"
KEY_B = "000102030405060708090a0b0c0d0e0f"
TENANT = """\
# Commune de Test: written by hand, comments and layout must survive an import.
version: v1
kind: tenant
name: testville
identity:
  name: "Commune de Test"
  kind: commune
contacts:
  dpo: {name: DPO, email: dpo@testville.example.org}
devices:
  # The first meter, installed by hand.
  - dev_eui: "70b3d5a000000001"
    name: Compteur mairie
    model: axioma-qalcosonic-w1
# Alert rules follow the devices.
alerts: []
"""
OTHER = """\
version: v1
kind: tenant
name: autreville
identity: {name: "Autreville", kind: commune}
contacts:
  dpo: {name: DPO, email: dpo@autreville.example.org}
devices:
  - dev_eui: "70b3d5a0000000ff"
    name: Compteur école
    model: axioma-qalcosonic-w1
"""


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "testville.yaml").write_text(TENANT)
    (tenants / "autreville.yaml").write_text(OTHER)
    keys = tmp_path / "secrets" / "keys.yaml"
    keys.parent.mkdir()
    keys.write_text('"70b3d5a000000001": "ffffffffffffffffffffffffffffffff"\n')
    keys.chmod(0o600)
    monkeypatch.setenv("HV_TENANTS_DIR", str(tenants))
    monkeypatch.setenv("HV_CHIRPSTACK_KEYS_FILE", str(keys))
    monkeypatch.setenv("HV_CATALOGUE_DIR", str(tmp_path / "no-catalogue"))
    get_settings.cache_clear()
    yield tenants / "testville.yaml", keys
    get_settings.cache_clear()


def _import(path: Path, *extra: str) -> object:
    return runner.invoke(_app(), ["devices", "import", "testville", str(path), "--model",
                                  "axioma-qalcosonic-w1", "--column", "meter_id=N° compteur",
                                  *extra])


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "livraison.csv"
    path.write_text("DevEUI;AppEUI;AppKey;Serial;N° compteur\n" + "\n".join(rows) + "\n",
                    encoding="utf-8-sig")
    return path


def test_the_plan_shows_the_devices_and_writes_nothing(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    tenant, keys = files
    before = tenant.read_text(), keys.read_text()
    result = _import(_csv(tmp_path, f"70-B3-D5-A0-00-00-00-02;70b3d5a0ffffffff;{KEY_A};W1-0002;"
                                    "24-000002"), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "+ line 2: 70b3d5a000000002 'Qalcosonic W1 W1-0002'" in result.output
    assert "'meter_id': '24-000002'" in result.output
    assert "plan only" in result.output
    assert KEY_A not in result.output
    assert (tenant.read_text(), keys.read_text()) == before
    # Without --yes and without a terminal to ask on, the plan is shown and nothing written.
    unconfirmed = _import(_csv(tmp_path, f"70b3d5a000000002;70b3d5a0ffffffff;{KEY_A};W1-0002;"
                                         "24-000002"))
    assert unconfirmed.exit_code == 1 and "add --yes" in unconfirmed.output
    assert (tenant.read_text(), keys.read_text()) == before


def test_yes_appends_the_devices_and_the_keys_keeping_the_file_as_written(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    tenant, keys = files
    delivery = _csv(tmp_path, f"70b3d5a000000002;70b3d5a0ffffffff;{KEY_A};W1-0002;24-000002",
                    f"70b3d5a000000003;70b3d5a0ffffffff;{KEY_B};W1-0003;24-000003")
    result = _import(delivery, "--yes")
    assert result.exit_code == 0, result.output
    text = tenant.read_text()
    assert text.startswith(TENANT.split("# Alert rules")[0])
    assert "# The first meter, installed by hand." in text
    assert text.endswith("    model: axioma-qalcosonic-w1\n    data_class: water-consumption\n"
                         "    variables:\n      serial: W1-0003\n      meter_id: 24-000003\n"
                         "      join_eui: 70b3d5a0ffffffff\n# Alert rules follow the devices.\n"
                         "alerts: []\n")
    spec = load_file(tenant)
    added = {d.dev_eui: d for d in spec.devices}
    assert list(added) == ["70b3d5a000000001", "70b3d5a000000002", "70b3d5a000000003"]
    assert added["70b3d5a000000003"].variables == {
        "serial": "W1-0003", "meter_id": "24-000003", "join_eui": "70b3d5a0ffffffff"}
    assert added["70b3d5a000000003"].data_class == "water-consumption"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert load_keys(keys) == {"70b3d5a000000001": "f" * 32, "70b3d5a000000002": KEY_A,
                               "70b3d5a000000003": KEY_B}


def test_bad_rows_are_listed_line_by_line_and_nothing_is_written(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    tenant, keys = files
    before = tenant.read_text(), keys.read_text()
    delivery = _csv(
        tmp_path,
        f"70b3d5a000000002;70b3d5a0ffffffff;{KEY_A};W1-0002;",
        "70b3d5a000000003;70b3d5a0ffffffff;not-a-key;W1-0003;",
        f"70b3d5a000000002;70b3d5a0ffffffff;{KEY_B};W1-0004;",
        f"70b3d5a0000000ff;70b3d5a0ffffffff;{KEY_B};W1-0005;",
        f"70b3d5a00000zz06;70b3d5a0ffffffff;{KEY_B};W1-0006;",
    )
    result = _import(delivery, "--yes")
    assert result.exit_code == 1
    assert "x line 3: AppKey is not 32 hex digits" in result.output
    assert "x line 4: DevEUI 70b3d5a000000002 already on line 2" in result.output
    assert "x line 5: DevEUI 70b3d5a0000000ff is already declared by member autreville" \
        in result.output
    assert "x line 6: DevEUI '70b3d5a00000zz06' is not 16 hex digits" in result.output
    assert "nothing written" in result.output
    assert (tenant.read_text(), keys.read_text()) == before


def test_a_spreadsheet_is_read_like_a_csv(files: tuple[Path, Path], tmp_path: Path) -> None:
    from openpyxl import Workbook

    tenant, _ = files
    book = Workbook()
    sheet = book.active
    sheet.append(["Dev EUI", "App Key", "Serial number", "N° compteur", "Latitude", "Longitude"])
    sheet.append(["70b3d5a000000009", KEY_A.upper(), "W1-0009", "24-000009", 47.9, -4.1])
    path = tmp_path / "livraison.xlsx"
    book.save(path)
    result = _import(path, "--yes")
    assert result.exit_code == 0, result.output
    device = load_file(tenant).devices[-1]
    assert (device.dev_eui, device.location.lat if device.location else None) == (
        "70b3d5a000000009", 47.9)
