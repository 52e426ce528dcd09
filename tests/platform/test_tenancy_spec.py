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


ANALYTICS = GOOD + """
  - dev_eui: "{eui2}"
    name: Air CM1
    model: milesight-am103
    location: {{lat: 47.9, lon: -4.1, building: École, room: CM1}}
analytics:
  air:
    low_ppm: 900
    buildings:
      École:
        week: {{mon: ["08:30-12:00", "13:30-16:30"], wed: ["{wed}"]}}
alerts:
  - {{name: co2, metric: air.co2, condition: above, threshold: 1500, duration: 20m,
      buildings: [École]}}
  - {{name: "{second}", condition: silent, devices: ["{eui}"]}}
"""


def analytics_file(folder: Path, name: str, wed: str = "08:30-12:00", second: str = "muet",
                   extra: str = "") -> Path:
    text = ANALYTICS.format(name=name, eui="00000000000000a1", eui2="00000000000000a2",
                            wed=wed, second=second)
    return write(folder, name, text.replace("    low_ppm: 900\n", "    low_ppm: 900\n" + extra))


def test_a_members_analytics_settings_and_alert_rules_are_in_its_file(tmp_path: Path) -> None:
    spec = load_file(analytics_file(tmp_path, "a1"))
    assert (spec.analytics.air.low_ppm, spec.analytics.air.high_ppm) == (900, 1500)
    assert spec.analytics.air.buildings["École"].week["wed"] == ["08:30-12:00"]
    assert spec.analytics.water.leak_nights == 3  # a default
    assert [(r.name, r.duration.total_seconds()) for r in spec.alerts] == [
        ("co2", 1200.0), ("muet", 0.0)]
    # A file without them gets the defaults and no rules.
    plain = load_file(write(tmp_path, "a2", GOOD.format(name="a2", eui="00000000000000a3")))
    assert (plain.analytics.air.low_ppm, plain.alerts) == (800, [])


def test_the_example_members_declare_their_rules_in_their_files() -> None:
    locmaria = load_file(REPO / "tenants" / "locmaria.yaml")
    assert [r.name for r in locmaria.alerts] == ["co2-ecole", "fuite-eau", "capteur-muet"]
    assert locmaria.analytics.waste.round_days == ["mon", "thu"]
    assert locmaria.analytics.air.buildings["École"].week["wed"] == ["08:30-12:00"]


def test_it_names_the_file_and_field_of_an_unknown_analytics_field(tmp_path: Path) -> None:
    path = analytics_file(tmp_path, "a3", extra="    hihg_ppm: 1400\n")
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert "analytics.air.hihg_ppm: Extra inputs are not permitted" in str(info.value)


def test_it_names_the_file_field_and_day_of_a_bad_calendar_span(tmp_path: Path) -> None:
    path = analytics_file(tmp_path, "a4", wed="12:00-08:30")
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert "analytics.air.buildings.École.week: Value error, wed: '12:00-08:30': the end" \
        " must come after the start" in str(info.value)


def test_it_refuses_two_alert_rules_with_the_same_name(tmp_path: Path) -> None:
    path = analytics_file(tmp_path, "a5", second="co2")
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert "alerts: Value error, rule names must be unique: co2 declared twice" in str(info.value)


def test_a_rule_or_calendar_names_devices_and_buildings_of_the_member(tmp_path: Path) -> None:
    text = analytics_file(tmp_path, "a6").read_text()
    write(tmp_path, "a6", text.replace('devices: ["00000000000000a1"]',
                                       'devices: ["00000000000000ff"]'))
    with pytest.raises(SpecError, match=r"alerts: Value error, rule muet: device"
                                        r" 00000000000000ff is not in `devices`"):
        load_file(tmp_path / "a6.yaml")
    write(tmp_path, "a6", text.replace("buildings: [École]", "buildings: [Ecole]"))
    with pytest.raises(SpecError, match=r"alerts: Value error, rule co2: no device is in"
                                        r" building 'Ecole' \(.*'École'\)"):
        load_file(tmp_path / "a6.yaml")
    write(tmp_path, "a6", text.replace("      École:\n", "      Mairie:\n"))
    with pytest.raises(SpecError, match=r"analytics: Value error, air.buildings: no device is"
                                        r" in building 'Mairie'"):
        load_file(tmp_path / "a6.yaml")
