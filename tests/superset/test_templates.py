"""The dashboard templates and their rendering as Superset bundles, without Superset."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from hypervision.superset.bundle import Column, Target, render, time_range
from hypervision.superset.templates import TEMPLATES_DIR, TemplateError, load


def target(slug: str) -> Target:
    return Target(key=slug, title=f"Commune {slug}", scope="member",
                  database_name=f"hv_{slug}", schema=f"tenant_{slug}",
                  login_role=f"{slug}_reader",
                  sqlalchemy_uri=f"postgresql+psycopg2://{slug}_reader:XXXXXXXXXX@h:1/db",
                  dashboard_slug_prefix=f"{slug}-")


def columns_from_templates() -> dict[str, list[Column]]:
    """Every column a label names, typed loosely: enough to render."""
    templates = load()
    return {table: [Column(name, "TIMESTAMP WITHOUT TIME ZONE" if name in (
        "time", "day", "time_local") else "TEXT") for name in spec.labels]
        for table, spec in templates.datasets.items()}


def edited(tmp_path: Path, name: str, change: dict) -> Path:
    folder = tmp_path / "dashboards"
    shutil.copytree(TEMPLATES_DIR, folder)
    path = folder / f"{name}.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content.update(change)
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return folder


def test_the_shipped_templates_are_valid() -> None:
    templates = load()
    assert {t.name for t in templates.for_scope("member")} == {"air", "health", "lighting",
                                                               "waste", "water"}
    assert [t.name for t in templates.for_scope("operator")] == ["operator"]


def test_it_rejects_a_chart_naming_an_unknown_metric(tmp_path: Path) -> None:
    water = yaml.safe_load((TEMPLATES_DIR / "water.yaml").read_text(encoding="utf-8"))
    water["charts"][0]["params"]["metric"] = "no_such_metric"
    folder = edited(tmp_path, "water", {"charts": water["charts"]})
    with pytest.raises(TemplateError, match=r"water\.yaml: chart consumption_month: unknown"):
        load(folder)


def test_it_rejects_a_layout_naming_an_unknown_chart(tmp_path: Path) -> None:
    folder = edited(tmp_path, "waste", {"layout": [["to_empty", "nowhere"]]})
    with pytest.raises(TemplateError, match=r"waste\.yaml: invalid"):
        load(folder)


def test_a_member_operator_chart_mix_is_refused(tmp_path: Path) -> None:
    operator = yaml.safe_load((TEMPLATES_DIR / "operator.yaml").read_text(encoding="utf-8"))
    operator["charts"][0]["dataset"] = "dash_uplinks"
    folder = edited(tmp_path, "operator", {"charts": operator["charts"]})
    with pytest.raises(TemplateError, match="is for the member scope"):
        load(folder)


def test_uuids_are_stable_for_a_member_and_distinct_between_members() -> None:
    templates = load()
    columns = columns_from_templates()
    member = templates.for_scope("member")
    first = render(target("alpha"), member, templates, columns)
    again = render(target("alpha"), member, templates, columns)
    other = render(target("beta"), member, templates, columns)
    assert [o.uuid for o in first.objects] == [o.uuid for o in again.objects]
    assert not {o.uuid for o in first.objects} & {o.uuid for o in other.objects}
    assert first.digest("pw") == again.digest("pw") != first.digest("other password")


def test_each_import_bundle_holds_its_kind_and_what_it_depends_on() -> None:
    templates = load()
    bundle = render(target("alpha"), templates.for_scope("member"), templates,
                    columns_from_templates())
    for kind, folders in (("database", {"databases"}),
                          ("dataset", {"databases", "datasets"}),
                          ("chart", {"databases", "datasets", "charts"}),
                          ("dashboard", {"databases", "datasets", "charts", "dashboards"})):
        names = zipfile.ZipFile(io.BytesIO(bundle.zip(kind))).namelist()
        assert {n.split("/")[1] for n in names} == folders | {"metadata.yaml"}
    database = bundle.files["databases/hv_alpha.yaml"]
    assert database["expose_in_sqllab"] is False and database["allow_dml"] is False
    assert "XXXXXXXXXX" in database["sqlalchemy_uri"]  # the password travels apart
    dashboard = bundle.files["dashboards/water.yaml"]
    assert dashboard["slug"] == "alpha-water"
    assert dashboard["dashboard_title"] == "Eau potable — Commune alpha"


def test_a_dataset_to_explore_is_given_even_when_no_chart_reads_it() -> None:
    """Every reading (dash_measurements) is the base of a member's own charts: each member
    gets it although the templates' charts read hourly rows."""
    templates = load()
    assert templates.datasets["dash_measurements"].explore
    member = templates.for_scope("member")
    assert not any(c.dataset == "dash_measurements" for t in member for c in t.charts)
    bundle = render(target("alpha"), member, templates, columns_from_templates())
    assert "datasets/hv_alpha/dash_measurements.yaml" in bundle.files
    operator = render(Target(key="", title="Syndicat", scope="operator",
                             database_name="hv_operator", schema="hv_operator",
                             login_role="hv_operator_reader", sqlalchemy_uri="x",
                             dashboard_slug_prefix="operator-"),
                      templates.for_scope("operator"), templates, columns_from_templates())
    assert not any(name.endswith("/dash_measurements.yaml") for name in operator.files)


def test_it_refuses_a_label_for_a_column_the_view_lacks() -> None:
    templates = load()
    columns = columns_from_templates()
    columns["dash_water_daily"] = [c for c in columns["dash_water_daily"]
                                   if c.name != "address"]
    with pytest.raises(ValueError, match=r"dash_water_daily: labels for unknown columns"):
        render(target("alpha"), templates.for_scope("member"), templates, columns)


def test_a_relative_time_range_runs_to_the_end_of_today() -> None:
    assert time_range("last 7 days") == (
        'DATEADD(DATETIME("now"), -7, day) : DATEADD(DATETIME("today"), 1, day)')
    assert time_range("No filter") == "No filter"
