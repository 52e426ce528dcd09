"""Each member sees its own data in Superset, and nothing of the others.

Against a real Superset (tests/superset/conftest.py): alpha's user sees alpha's dashboards
with alpha's data; beta's charts, datasets and dashboards answer 403 or 404 to it; a chart
query tampered with to read beta's schema is refused by PostgreSQL itself; re-applying
changes nothing, and a changed template updates charts and datasets in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from hypervision.superset import provision, server
from hypervision.superset.templates import TEMPLATES_DIR, load
from tests.superset.conftest import (
    ALPHA_USER,
    Deployment,
    alpha_spec_with_users,
    chart_data,
)

pytestmark = pytest.mark.services

MEMBER_TEMPLATES = {"air", "health", "waste", "water"}


def reapply(deployment: Deployment, template_dir: Path = TEMPLATES_DIR,
            users: tuple[str, ...] = (ALPHA_USER,), force: bool = False,
            messages: list[str] | None = None) -> list[provision.Applied]:
    return provision.apply(deployment.settings,
                           alpha_spec_with_users(deployment.specs, *users),
                           log=(messages if messages is not None else []).append,
                           template_set=load(template_dir), force=force)


def ids_of(client: Any, resource: str, **equals: Any) -> set[int]:
    return {row["id"] for row in client.find(resource, columns=["id"], **equals)}


def dataset_ids(client: Any, schema: str) -> dict[str, int]:
    return {row["table_name"]: row["id"]
            for row in client.find("dataset", columns=["id", "table_name"], schema=schema)}


def test_each_member_gets_a_dashboard_per_template_and_the_operator_one(
        superset: Deployment) -> None:
    assert set(superset.dashboards["alpha"]) == MEMBER_TEMPLATES
    assert set(superset.dashboards["beta"]) == MEMBER_TEMPLATES
    assert set(superset.dashboards["operator"]) == {"operator"}


def test_a_member_user_sees_its_own_dashboards_with_its_data(
        superset: Deployment, alpha_api: Any, admin: psycopg.Connection) -> None:
    visible = alpha_api.get("/api/v1/dashboard/")["result"]
    assert {d["id"] for d in visible} == set(superset.dashboards["alpha"].values())
    assert all(d["dashboard_title"].endswith("Commune Alpha (test)") for d in visible)

    datasets = dataset_ids(alpha_api, "tenant_alpha")
    answer = chart_data(alpha_api, datasets["dash_uplinks"], metrics=["uplinks"])
    assert answer.status_code == 200, answer.text
    stored = admin.execute("SELECT count(*) FROM tenant_alpha.uplinks").fetchone()[0]
    assert answer.json()["result"][0]["data"] == [{"uplinks": stored}]
    assert stored >= superset.uplinks["alpha"] > 0

    answer = chart_data(alpha_api, datasets["dash_measurements"], metrics=["co2_avg"],
                        columns=["device_name"],
                        filters=[{"col": "metric", "op": "==", "val": "air.co2"}])
    assert answer.status_code == 200, answer.text
    rows = answer.json()["result"][0]["data"]
    assert [r["device_name"] for r in rows] == ["Air A3"]
    assert 400 <= rows[0]["co2_avg"] <= 2000


def test_a_member_user_lists_nothing_of_another_member(
        superset: Deployment, alpha_api: Any, admin_api: Any) -> None:
    beta_datasets = set(dataset_ids(admin_api, "tenant_beta").values())
    assert beta_datasets
    assert not set(dataset_ids(alpha_api, "tenant_beta").values())
    assert {d["id"] for d in alpha_api.get("/api/v1/dataset/")["result"]}.isdisjoint(
        beta_datasets)
    assert [d["database_name"] for d in alpha_api.get("/api/v1/database/")["result"]] == [
        "hv_alpha"]
    beta_charts = set()
    for dataset in beta_datasets:
        beta_charts |= ids_of(admin_api, "chart", datasource_id=dataset)
    assert beta_charts
    assert {c["id"] for c in alpha_api.find("chart", columns=["id"])}.isdisjoint(beta_charts)


def test_another_members_charts_datasets_and_dashboards_answer_403_or_404(
        superset: Deployment, alpha_api: Any, admin_api: Any) -> None:
    beta_datasets = dataset_ids(admin_api, "tenant_beta")
    beta_charts = set()
    for dataset in beta_datasets.values():
        beta_charts |= ids_of(admin_api, "chart", datasource_id=dataset)
    beta_dashboards = superset.dashboards["beta"]
    beta_database = ids_of(admin_api, "database", database_name="hv_beta").pop()

    paths = [f"/api/v1/dashboard/{i}" for i in beta_dashboards.values()]
    paths += [f"/api/v1/dashboard/beta-{name}" for name in beta_dashboards]
    paths += [f"/api/v1/dashboard/{i}/charts" for i in beta_dashboards.values()]
    paths += [f"/api/v1/dashboard/{i}/datasets" for i in beta_dashboards.values()]
    paths += [f"/api/v1/chart/{i}" for i in beta_charts]
    paths += [f"/api/v1/dataset/{i}" for i in beta_datasets.values()]
    paths += [f"/api/v1/database/{beta_database}", f"/api/v1/database/{beta_database}/schemas/"]
    answers = {path: alpha_api.response("GET", path).status_code for path in paths}
    assert {path: code for path, code in answers.items() if code not in (403, 404)} == {}

    for dataset in beta_datasets.values():
        answer = chart_data(alpha_api, dataset, metrics=[{
            "expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "n"}])
        assert answer.status_code in (403, 404), answer.text
    # The admin sees them: the ids above are real.
    assert admin_api.response("GET", f"/api/v1/chart/{min(beta_charts)}").status_code == 200


def test_a_tampered_chart_query_is_refused_by_the_database_role(
        superset: Deployment, alpha_api: Any, admin_api: Any) -> None:
    own = dataset_ids(alpha_api, "tenant_alpha")["dash_measurements"]
    # Superset lets these through to PostgreSQL (no subquery in them); alpha's read-only
    # role then refuses them: the isolation holds in the database.
    for expression in ("tenant_beta.uplinks.dev_eui",
                       "(query_to_xml('SELECT * FROM tenant_beta.uplinks', true, true, ''))::text"):
        answer = chart_data(alpha_api, own, metrics=[{
            "expressionType": "SQL", "sqlExpression": f"MAX({expression})", "label": "x"}])
        assert answer.status_code >= 400, answer.text
        assert "permission denied for schema tenant_beta" in answer.text
    # A subquery is refused by Superset before it reaches the database.
    answer = chart_data(alpha_api, own, metrics=[{
        "expressionType": "SQL", "sqlExpression": "(SELECT count(*) FROM tenant_beta.uplinks)",
        "label": "x"}])
    assert answer.status_code >= 400
    assert "tenant_beta" not in answer.json().get("result", "")
    # Even the admin, running any SQL on alpha's connection, cannot read beta's schema.
    alpha_db = ids_of(admin_api, "database", database_name="hv_alpha").pop()
    answer = admin_api.response("POST", "/api/v1/sqllab/execute/", json={
        "database_id": alpha_db, "sql": "SELECT count(*) FROM tenant_beta.uplinks",
        "runAsync": False, "schema": "tenant_alpha"})
    assert answer.status_code >= 400
    assert "permission denied for schema tenant_beta" in answer.text


def test_sql_lab_is_off_for_member_users(superset: Deployment, alpha_api: Any,
                                         admin_api: Any) -> None:
    alpha_db = ids_of(admin_api, "database", database_name="hv_alpha").pop()
    answer = alpha_api.response("POST", "/api/v1/sqllab/execute/", json={
        "database_id": alpha_db, "sql": "SELECT 1", "runAsync": False})
    assert answer.status_code in (401, 403)
    assert alpha_api.response("GET", "/api/v1/sqllab/").status_code in (401, 403)
    database = admin_api.get(f"/api/v1/database/{alpha_db}")["result"]
    assert database["expose_in_sqllab"] is False
    assert database["allow_dml"] is False


def test_the_connection_logs_in_with_the_members_read_only_role(
        superset: Deployment, admin_api: Any) -> None:
    alpha_db = ids_of(admin_api, "database", database_name="hv_alpha").pop()
    uri = admin_api.get(f"/api/v1/database/{alpha_db}/connection")["result"]["sqlalchemy_uri"]
    assert uri.startswith("postgresql+psycopg2://alpha_reader:")
    assert superset.settings.role_password("alpha_reader") not in uri  # masked


def test_the_operator_sees_counts_per_member_and_no_member_data(
        superset: Deployment, operator_api: Any, admin_api: Any) -> None:
    visible = operator_api.get("/api/v1/dashboard/")["result"]
    assert [d["id"] for d in visible] == [superset.dashboards["operator"]["operator"]]
    datasets = dataset_ids(operator_api, "hv_operator")
    answer = chart_data(operator_api, datasets["events_per_member_day"],
                        metrics=["uplinks_stored"], columns=["member_slug"])
    assert answer.status_code == 200, answer.text
    per_member = {r["member_slug"]: r["uplinks_stored"]
                  for r in answer.json()["result"][0]["data"]}
    assert per_member["alpha"] >= superset.uplinks["alpha"]
    assert per_member["beta"] >= superset.uplinks["beta"]
    alpha_measurements = dataset_ids(admin_api, "tenant_alpha")["dash_measurements"]
    answer = chart_data(operator_api, alpha_measurements, metrics=["measurements"])
    assert answer.status_code in (403, 404)
    # And the operator's connection cannot read a member's schema either.
    own = datasets["devices_per_member"]
    answer = chart_data(operator_api, own, metrics=[{
        "expressionType": "SQL", "sqlExpression": "MAX(tenant_alpha.measurements.value)",
        "label": "x"}])
    assert "permission denied for schema tenant_alpha" in answer.text


def test_superset_refuses_content_from_other_origins(superset: Deployment) -> None:
    import httpx

    answer = httpx.get(f"{server.url(superset.settings)}/login/")
    policy = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' blob: data:"
    assert directives["connect-src"] == "'self'"
    assert "scarf" not in policy and "https:" not in policy
    assert "access-control-allow-origin" not in answer.headers


def test_reapplying_changes_nothing(superset: Deployment, admin_api: Any) -> None:
    before = {kind: ids_of(admin_api, kind) for kind in ("dashboard", "chart", "dataset",
                                                         "database")}
    messages: list[str] = []
    results = reapply(superset, messages=messages)
    assert not [m for m in messages if "imported" in m]  # unchanged: nothing imported
    forced: list[str] = []
    reapply(superset, force=True, messages=forced)
    assert len([m for m in forced if "imported" in m]) == 3  # alpha, beta, operator
    after = {kind: ids_of(admin_api, kind) for kind in before}
    assert after == before
    assert {r.target: r.dashboards for r in results} == superset.dashboards
    assert all(r.deleted == 0 for r in results)


def test_a_changed_template_updates_charts_and_datasets_in_place(
        superset: Deployment, admin_api: Any, tmp_path: Path) -> None:
    changed = tmp_path / "dashboards"
    shutil.copytree(TEMPLATES_DIR, changed)
    water = yaml.safe_load((changed / "water.yaml").read_text(encoding="utf-8"))
    water["charts"][0]["title"] = "Consommation du mois (modifié)"
    removed = water["charts"].pop(1)["name"]
    water["layout"] = [[i for i in row if i != removed] for row in water["layout"]]
    (changed / "water.yaml").write_text(yaml.safe_dump(water, allow_unicode=True),
                                        encoding="utf-8")
    datasets = yaml.safe_load((changed / "datasets.yaml").read_text(encoding="utf-8"))
    daily = next(d for d in datasets["datasets"] if d["table"] == "dash_water_daily")
    daily["metrics"]["consumption"]["label"] = "Volume consommé (m³)"
    (changed / "datasets.yaml").write_text(yaml.safe_dump(datasets, allow_unicode=True),
                                           encoding="utf-8")
    alpha_water = superset.dashboards["alpha"]["water"]
    charts_before = {c["slice_name"]: c["id"] for c in
                     admin_api.get(f"/api/v1/dashboard/{alpha_water}/charts")["result"]}
    try:
        results = reapply(superset, changed)
        assert {r.target: r.dashboards for r in results} == superset.dashboards
        charts = {c["slice_name"]: c["id"] for c in
                  admin_api.get(f"/api/v1/dashboard/{alpha_water}/charts")["result"]}
        assert charts["Consommation du mois (modifié)"] == charts_before[
            "Consommation sur 30 jours"]
        assert "Compteurs relevés" not in charts
        gone = admin_api.response("GET", f"/api/v1/chart/{charts_before['Compteurs relevés']}")
        assert gone.status_code == 404
        dataset = dataset_ids(admin_api, "tenant_alpha")["dash_water_daily"]
        metrics = admin_api.get(f"/api/v1/dataset/{dataset}")["result"]["metrics"]
        assert {m["metric_name"]: m["verbose_name"] for m in metrics}["consumption"] == (
            "Volume consommé (m³)")
    finally:
        reapply(superset)
    restored = admin_api.get(f"/api/v1/dashboard/{alpha_water}/charts")["result"]
    assert {c["slice_name"] for c in restored} == set(charts_before)


def test_a_user_no_longer_declared_is_deactivated(superset: Deployment,
                                                  admin_api: Any) -> None:
    extra = "remplacant@alpha.example.org"
    reapply(superset, users=(ALPHA_USER, extra))
    assert admin_api.find("security/users", username=extra)[0]["active"] is True
    reapply(superset)
    assert admin_api.find("security/users", username=extra)[0]["active"] is False
    assert admin_api.find("security/users", username=ALPHA_USER)[0]["active"] is True
