"""Dashboard templates rendered for one target (a member, or the operator) as Superset
import bundles: the zip files that Superset's own export produces and its import reads.

Every object gets a uuid derived from the target and its name, so that importing again
updates the same database connection, datasets, charts and dashboards in place: ids, links
and bookmarks survive. Superset's dashboard import with `overwrite=true` only overwrites the
dashboard, so provisioning imports each kind through its own endpoint, with overwrite:
databases, then datasets, then charts, then dashboards (hypervision.superset.provision).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from hypervision.superset.templates import (
    ChartSpec,
    DashboardTemplate,
    DatasetSpec,
    Scope,
    TemplateSet,
)

NAMESPACE = uuid.UUID("6f0b2a4e-3c1d-5e7f-9a8b-1c2d3e4f5a6b")
PASSWORD_MASK = "XXXXXXXXXX"  # Superset's placeholder for a password passed separately
VERSION = "1.0.0"

# What each import endpoint reads (Superset's importers ignore nothing gracefully: a
# bundle holds exactly the kinds its command expects) and the type its metadata names.
KINDS = ("database", "dataset", "chart", "dashboard")
RESOURCES = {"database": "database", "dataset": "dataset", "chart": "chart",
             "dashboard": "dashboard"}
METADATA_TYPES = {"database": "Database", "dataset": "SqlaTable", "chart": "Slice",
                  "dashboard": "Dashboard"}
FOLDERS = {"database": "databases", "dataset": "datasets", "chart": "charts",
           "dashboard": "dashboards"}


@dataclass(frozen=True)
class Column:
    """A column of a view, as PostgreSQL describes it."""

    name: str
    type: str  # upper-case SQL type, e.g. "TIMESTAMP WITH TIME ZONE"

    @property
    def temporal(self) -> bool:
        return self.type.startswith(("TIMESTAMP", "DATE"))


@dataclass(frozen=True)
class Target:
    """Who a bundle is for: a member (key = its slug) or the operator (key = '')."""

    key: str
    title: str             # shown in dashboard titles, e.g. the member's name
    scope: Scope
    database_name: str     # Superset's name of the connection, e.g. hv_alpha
    schema: str            # where the views are: tenant_<slug> or hv_operator
    login_role: str        # the read-only PostgreSQL role the connection logs in with
    sqlalchemy_uri: str    # with PASSWORD_MASK in place of the password
    dashboard_slug_prefix: str

    def uuid(self, kind: str, name: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"hypervision/{self.key or 'operator'}/{kind}/{name}"))


@dataclass(frozen=True)
class Managed:
    """One object a bundle creates, as recorded in hv.superset_objects."""

    kind: str
    uuid: str
    template: str
    name: str


@dataclass
class Bundle:
    target: Target
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> YAML content
    objects: list[Managed] = field(default_factory=list)
    dashboards: dict[str, str] = field(default_factory=dict)  # template name -> uuid

    def zip(self, kind: str) -> bytes:
        """The bundle for one import endpoint: that kind and the kinds it depends on."""
        wanted = {FOLDERS[k] for k in KINDS[: KINDS.index(kind) + 1]}
        root = f"hypervision_{self.target.key or 'operator'}_{kind}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            metadata = {"version": VERSION, "type": METADATA_TYPES[kind],
                        "timestamp": datetime.now(UTC).isoformat()}
            archive.writestr(f"{root}/metadata.yaml", _dump(metadata))
            for path, content in sorted(self.files.items()):
                if path.split("/")[0] in wanted:
                    archive.writestr(f"{root}/{path}", _dump(content))
        return buffer.getvalue()

    def digest(self, *extra: str) -> str:
        """A fingerprint of what this bundle would import (and of `extra`, such as the
        connection's password), to tell whether anything changed since the last apply."""
        text = json.dumps([self.files, extra], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def database_file(self) -> str:
        return f"databases/{self.target.database_name}.yaml"


def _dump(content: dict[str, Any]) -> str:
    return yaml.safe_dump(content, allow_unicode=True, sort_keys=False)


def render(target: Target, templates: list[DashboardTemplate], template_set: TemplateSet,
           columns: dict[str, list[Column]]) -> Bundle:
    """The bundle of `templates` for `target`; `columns` describes each view it reads."""
    bundle = Bundle(target)
    database_uuid = target.uuid("database", target.database_name)
    bundle.files[bundle.database_file] = _database(target, database_uuid)
    bundle.objects.append(Managed("database", database_uuid, "", target.database_name))

    # The charts' datasets, and those given to everyone of the scope to explore.
    tables = sorted({chart.dataset for t in templates for chart in t.charts}
                    | {name for name, spec in template_set.datasets.items()
                       if spec.explore and spec.scope == target.scope})
    for table in tables:
        spec = template_set.datasets[table]
        if table not in columns:
            raise ValueError(f"{target.schema}.{table} does not exist (migrations applied?)")
        dataset_uuid = target.uuid("dataset", table)
        bundle.files[f"datasets/{target.database_name}/{table}.yaml"] = _dataset(
            target, spec, columns[table], dataset_uuid, database_uuid)
        bundle.objects.append(Managed("dataset", dataset_uuid, "", table))

    for template in templates:
        chart_uuids: dict[str, str] = {}
        for chart in template.charts:
            spec = template_set.datasets[chart.dataset]
            _check_columns(template, chart, spec, columns[chart.dataset])
            chart_uuid = target.uuid("chart", f"{template.name}/{chart.name}")
            chart_uuids[chart.name] = chart_uuid
            bundle.files[f"charts/{template.name}_{chart.name}.yaml"] = _chart(
                chart, spec, chart_uuid, target.uuid("dataset", chart.dataset))
            bundle.objects.append(Managed("chart", chart_uuid, template.name, chart.title))
        dashboard_uuid = target.uuid("dashboard", template.name)
        bundle.files[f"dashboards/{template.name}.yaml"] = _dashboard(
            target, template, dashboard_uuid, chart_uuids)
        bundle.objects.append(Managed("dashboard", dashboard_uuid, template.name,
                                      template.title))
        bundle.dashboards[template.name] = dashboard_uuid
    return bundle


def _database(target: Target, database_uuid: str) -> dict[str, Any]:
    """A read-only connection: no SQL Lab, no DML, no file upload, no data preview."""
    return {
        "database_name": target.database_name,
        "sqlalchemy_uri": target.sqlalchemy_uri,
        "cache_timeout": None,
        "expose_in_sqllab": False,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "impersonate_user": False,
        "extra": {
            "metadata_params": {},
            "engine_params": {"connect_args": {
                "application_name": f"superset {target.key or 'operator'}",
                # A runaway chart query stops after a minute.
                "options": "-c statement_timeout=60000",
            }},
            "metadata_cache_timeout": {},
            "schemas_allowed_for_file_upload": [],
            "allows_virtual_table_explore": False,
            "disable_data_preview": True,
            "cost_estimate_enabled": False,
        },
        "uuid": database_uuid,
        "version": VERSION,
        "is_managed_externally": True,
    }


def _dataset(target: Target, spec: DatasetSpec, columns: list[Column], dataset_uuid: str,
             database_uuid: str) -> dict[str, Any]:
    unknown = sorted(set(spec.labels) - {c.name for c in columns})
    if unknown:
        raise ValueError(f"datasets.yaml: {spec.table}: labels for unknown columns {unknown}")
    return {
        "table_name": spec.table,
        "main_dttm_col": spec.time_column,
        "description": spec.description,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "schema": target.schema,
        "catalog": None,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": dataset_uuid,
        "metrics": [
            {
                "metric_name": name,
                "verbose_name": metric.label,
                "metric_type": None,
                "expression": metric.sql,
                "description": metric.description,
                "d3format": metric.format,
                "extra": None,
                "warning_text": None,
            }
            for name, metric in spec.metrics.items()
        ],
        "columns": [
            {
                "column_name": column.name,
                "verbose_name": spec.labels.get(column.name),
                "is_dttm": column.temporal,
                "is_active": True,
                "type": column.type,
                "advanced_data_type": None,
                "groupby": True,
                "filterable": True,
                "expression": None,
                "description": None,
                "python_date_format": None,
                "extra": None,
            }
            for column in columns
        ],
        "version": VERSION,
        "database_uuid": database_uuid,
        "is_managed_externally": True,
    }


VIZ_DEFAULTS: dict[str, dict[str, Any]] = {
    "big_number_total": {"header_font_size": 0.4, "subheader_font_size": 0.15,
                         "y_axis_format": "SMART_NUMBER", "time_format": "smart_date"},
    "echarts_timeseries_line": {
        "time_grain_sqla": "P1D", "show_legend": True, "legendType": "scroll",
        "legendOrientation": "top", "rich_tooltip": True, "row_limit": 10000,
        "truncate_metric": True, "x_axis_time_format": "smart_date",
        "tooltipTimeFormat": "smart_date", "y_axis_format": "SMART_NUMBER",
        "markerEnabled": False, "zoomable": False, "sort_series_type": "sum",
        "y_axis_title_margin": 40, "y_axis_title_position": "Left", "x_axis_title_margin": 30,
        "series_limit": 0, "order_desc": True, "comparison_type": "values",
        "annotation_layers": [], "forecastEnabled": False,
    },
    "echarts_timeseries_bar": {
        "time_grain_sqla": "P1D", "show_legend": True, "legendType": "scroll",
        "legendOrientation": "top", "rich_tooltip": True, "row_limit": 10000,
        "truncate_metric": True, "x_axis_time_format": "smart_date",
        "tooltipTimeFormat": "smart_date", "y_axis_format": "SMART_NUMBER",
        "orientation": "vertical", "zoomable": False, "sort_series_type": "sum",
        "y_axis_title_margin": 40, "y_axis_title_position": "Left", "x_axis_title_margin": 30,
        "series_limit": 0, "order_desc": True, "comparison_type": "values",
        "annotation_layers": [], "forecastEnabled": False,
    },
    "table": {"query_mode": "aggregate", "include_search": False, "page_length": 0,
              "server_pagination": False, "table_timestamp_format": "%d/%m/%Y %H:%M",
              "row_limit": 1000, "order_desc": True, "show_cell_bars": True,
              "color_pn": False, "percent_metrics": [], "all_columns": [], "groupby": [],
              "metrics": [], "order_by_cols": []},
    "pie": {"show_labels": True, "label_type": "key_percent", "show_legend": True,
            "legendOrientation": "top", "donut": True, "innerRadius": 40, "outerRadius": 70,
            "number_format": "SMART_NUMBER", "row_limit": 100, "sort_by_metric": True},
}


RELATIVE = re.compile(r"^last (\d+) (day|hour|week|month)s?$")


def time_range(text: str) -> str:
    """Superset's time range for a template's: `last 7 days` becomes
    `DATEADD(DATETIME("now"), -7, day) : DATEADD(DATETIME("today"), 1, day)`, up to the end
    of today. Superset's own `Last week` ends at midnight, and a range ending `now` leaves
    today out of a column of dates: either would hide today from a live dashboard. Other
    values pass unchanged."""
    match = RELATIVE.match(text.strip().lower())
    if match is None:
        return text
    return (f'DATEADD(DATETIME("now"), -{match[1]}, {match[2]})'
            ' : DATEADD(DATETIME("today"), 1, day)')


def _filters(chart: ChartSpec, spec: DatasetSpec) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if chart.time_range is not None:
        if spec.time_column is None:
            raise ValueError(f"chart {chart.name}: time_range, but dataset {spec.table} has"
                             " no time_column")
        filters.append({"clause": "WHERE", "expressionType": "SIMPLE",
                        "subject": spec.time_column, "operator": "TEMPORAL_RANGE",
                        "comparator": time_range(chart.time_range)})
    for column, operator, value in chart.filters:
        filters.append({"clause": "WHERE", "expressionType": "SIMPLE", "subject": column,
                        "operator": operator, "comparator": value})
    return filters


def _chart(chart: ChartSpec, spec: DatasetSpec, chart_uuid: str,
           dataset_uuid: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        **VIZ_DEFAULTS.get(chart.viz, {}),
        **chart.params,
        "viz_type": chart.viz,
        # Rewritten by Superset's import to the dataset's id on this instance.
        "datasource": "1__table",
        "adhoc_filters": _filters(chart, spec),
        "extra_form_data": {},
    }
    if chart.time_range is not None:
        params["time_range"] = time_range(chart.time_range)
    return {
        "slice_name": chart.title,
        "description": chart.description,
        "certified_by": None,
        "certification_details": None,
        "viz_type": chart.viz,
        "params": params,
        "query_context": None,
        "cache_timeout": None,
        "uuid": chart_uuid,
        "version": VERSION,
        "dataset_uuid": dataset_uuid,
        "is_managed_externally": True,
    }


def _check_columns(template: DashboardTemplate, chart: ChartSpec, spec: DatasetSpec,
                   columns: list[Column]) -> None:
    """Catch a template naming a column its view does not have, before Superset does."""
    names = {c.name for c in columns}
    used: list[str] = [f[0] for f in chart.filters]
    for key in ("groupby", "all_columns", "columns"):
        value = chart.params.get(key) or []
        used += [v for v in value if isinstance(v, str)]
    if isinstance(chart.params.get("x_axis"), str):
        used.append(chart.params["x_axis"])
    unknown = sorted(set(used) - names)
    if unknown:
        raise ValueError(f"dashboards/{template.name}.yaml: chart {chart.name}: view"
                         f" {spec.table} has no column {unknown}")


def _dashboard(target: Target, template: DashboardTemplate, dashboard_uuid: str,
               chart_uuids: dict[str, str]) -> dict[str, Any]:
    """Superset's layout tree: ROOT > GRID > ROW > CHART or MARKDOWN, one ROW per line."""
    title = f"{template.title} — {target.title}"
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": title}},
    }
    charts = {c.name: c for c in template.charts}
    chart_number = 0
    for index, row in enumerate(template.layout):
        row_id = f"ROW-{index}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [],
                            "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        parents = ["ROOT_ID", "GRID_ID", row_id]
        for item in row:
            if item in charts:
                chart = charts[item]
                chart_number += 1
                item_id = f"CHART-{item}"
                position[item_id] = {
                    "type": "CHART", "id": item_id, "children": [], "parents": parents,
                    # chartId is a placeholder the import replaces with the real id.
                    "meta": {"uuid": chart_uuids[item], "chartId": chart_number,
                             "width": chart.width, "height": chart.height,
                             "sliceName": chart.title},
                }
            else:
                item_id = f"MARKDOWN-{item}"
                position[item_id] = {
                    "type": "MARKDOWN", "id": item_id, "children": [], "parents": parents,
                    "meta": {"code": template.notes[item], "width": _row_rest(row, charts),
                             "height": max((charts[i].height for i in row if i in charts),
                                           default=30)},
                }
            position[row_id]["children"].append(item_id)
    return {
        "dashboard_title": title,
        "description": template.description,
        "css": "",
        "slug": f"{target.dashboard_slug_prefix}{template.name}",
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": dashboard_uuid,
        "position": position,
        "metadata": {
            "color_scheme": "supersetColors",
            "refresh_frequency": 0,
            "expanded_slices": {},
            "label_colors": {},
            "shared_label_colors": [],
            "map_label_colors": {},
            "color_scheme_domain": [],
            "timed_refresh_immune_slices": [],
            "cross_filters_enabled": False,
            "native_filter_configuration": [],
            "default_filters": "{}",
        },
        "version": VERSION,
        "is_managed_externally": True,
    }


def _row_rest(row: list[str], charts: dict[str, ChartSpec]) -> int:
    """A note takes what its row's charts leave of the 12 columns (at least 2)."""
    used = sum(charts[item].width for item in row if item in charts)
    notes = sum(1 for item in row if item not in charts)
    return max(2, (12 - used) // max(notes, 1))
