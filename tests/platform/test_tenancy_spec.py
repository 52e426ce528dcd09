"""Tenant files are validated with errors that name the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypervision.tenancy.spec import SpecError, load_dir, load_file

REPO = Path(__file__).resolve().parents[2]
GOOD = """
version: v1
kind: tenant
name: {name}
identity: {{name: Commune {name}, kind: commune}}
contacts: {{dpo: {{name: DPO, email: dpo@{name}.example.org}}}}
devices:
  - {{dev_eui: "{eui}", name: Meter, model: milesight-em300-di}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_example_members_are_valid() -> None:
    specs = load_dir(REPO / "tenants")
    assert {s.identity.kind for s in specs} == {"syndicate", "commune", "intercommunality"}
    assert all(len(s.devices) >= 3 for s in specs)


def test_it_normalises_dev_euis(tmp_path: Path) -> None:
    spec = load_file(write(tmp_path, "x1", GOOD.format(name="x1", eui="24:E1:24:60:00:00:00:01")))
    assert spec.devices[0].dev_eui == "24e1246000000001"


def test_it_names_the_file_and_field_of_a_bad_dev_eui(tmp_path: Path) -> None:
    path = write(tmp_path, "x2", GOOD.format(name="x2", eui="not-hex"))
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert "devices.0.dev_eui" in str(info.value)


def test_it_rejects_a_misspelt_field(tmp_path: Path) -> None:
    path = write(tmp_path, "x3", GOOD.format(name="x3", eui="0000000000000003") + "retension: {}\n")
    with pytest.raises(SpecError, match="retension"):
        load_file(path)


def test_the_file_name_must_match_the_member_name(tmp_path: Path) -> None:
    path = write(tmp_path, "other", GOOD.format(name="x4", eui="0000000000000004"))
    with pytest.raises(SpecError, match="must match the file name"):
        load_file(path)


def test_a_dev_eui_cannot_belong_to_two_members(tmp_path: Path) -> None:
    write(tmp_path, "x5", GOOD.format(name="x5", eui="0000000000000005"))
    write(tmp_path, "x6", GOOD.format(name="x6", eui="0000000000000005"))
    with pytest.raises(SpecError, match="declared by both"):
        load_dir(tmp_path)


def test_it_reports_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "x7", "version: [v1\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_file(path)
