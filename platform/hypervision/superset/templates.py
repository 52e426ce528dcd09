"""The dashboard templates under dashboards/, validated (see dashboards/README.md).

Two kinds of file, each self-describing (`version: v1`, `kind:`):
- `datasets.yaml` (`kind: datasets`): the views dashboards read, with French labels for
  their columns and the saved metrics (SQL aggregates, French label, number format). A
  view is one Superset dataset per member, shared by every dashboard that uses it
  (Superset allows one dataset per database, schema and table).
- `<name>.yaml` (`kind: dashboard`): a dashboard's charts and their layout. Chart
  `params` are Superset's own form data (the "explore" controls), so anything Superset can
  draw can be declared; `time_range` and `filters` are shorthands for its ad-hoc filters.

`scope: member` templates are made for each member (from its schema, through its reader
role); `scope: operator` ones once, for the syndicate, from the hv_operator views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hypervision.settings import REPO_ROOT

TEMPLATES_DIR = REPO_ROOT / "dashboards"
NAME = r"^[a-z][a-z0-9_]{0,62}$"
Scope = Literal["member", "operator"]


class TemplateError(ValueError):
    """A template file is invalid; the message names the file and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(Strict):
    label: str = Field(description="French label, with the unit: 'CO₂ moyen (ppm)'.")
    sql: str = Field(description="An aggregate over the view's columns.")
    format: str | None = Field(default=None, description="d3 number format, e.g. ',.1f'.")
    description: str | None = None


class DatasetSpec(Strict):
    table: str = Field(pattern=NAME, description="A view in the member's schema or hv_operator.")
    scope: Scope = "member"
    time_column: str | None = Field(default=None, description="Default column of time filters.")
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="Column -> French label.")
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    explore: bool = Field(
        default=False, description="Given to every member (or the operator) even when no"
        " chart reads it: the base of one's own charts (every reading, say).")


class DatasetsFile(Strict):
    version: Literal["v1"]
    kind: Literal["datasets"]
    datasets: list[DatasetSpec]


Filter = tuple[str, str, Any]


class ChartSpec(Strict):
    name: str = Field(pattern=NAME)
    title: str
    dataset: str = Field(description="The `table` of a dataset in datasets.yaml.")
    viz: str = Field(description="Superset's viz_type: big_number_total, table, pie,"
                                 " echarts_timeseries_line, echarts_timeseries_bar...")
    width: int = Field(default=4, ge=1, le=12, description="Out of 12 columns.")
    height: int = Field(default=50, ge=10, le=200)
    description: str | None = None
    time_range: str | None = Field(
        default=None, description="'last 7 days' (up to now), or a Superset time range.")
    filters: list[Filter] = Field(default_factory=list,
                                  description="[column, operator, value], e.g. [metric, IN, [a]]")
    params: dict[str, Any] = Field(default_factory=dict, description="Superset form data.")


class DashboardTemplate(Strict):
    version: Literal["v1"]
    kind: Literal["dashboard"]
    name: str = Field(pattern=NAME)
    title: str
    scope: Scope = "member"
    description: str | None = None
    categories: list[str] = Field(
        default_factory=list,
        description="Device categories that call for this dashboard; empty: every member.",
    )
    notes: dict[str, str] = Field(default_factory=dict, description="Markdown blocks by name.")
    charts: list[ChartSpec]
    layout: list[list[str]] = Field(description="Rows of chart or note names.")

    @model_validator(mode="after")
    def _check_layout(self) -> DashboardTemplate:
        charts = {c.name for c in self.charts}
        if len(charts) != len(self.charts):
            raise ValueError("two charts share a name")
        placed = [item for row in self.layout for item in row]
        unknown = [item for item in placed if item not in charts and item not in self.notes]
        if unknown:
            raise ValueError(f"layout names unknown charts or notes: {unknown}")
        missing = charts - set(placed)
        if missing:
            raise ValueError(f"charts not placed in the layout: {sorted(missing)}")
        return self


class TemplateSet(Strict):
    """Every template, checked together: each chart's dataset and metrics exist."""

    datasets: dict[str, DatasetSpec]
    dashboards: list[DashboardTemplate]

    def for_scope(self, scope: Scope) -> list[DashboardTemplate]:
        return [d for d in self.dashboards if d.scope == scope]


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TemplateError(f"{path}: expected a mapping with version and kind")
    return raw


def _describe(error: ValidationError) -> str:
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in error.errors()
    )


def _metric_names(params: dict[str, Any]) -> list[str]:
    """Saved metrics a chart names (ad-hoc metrics are dicts and are not checked)."""
    found: list[str] = []
    for key in ("metric", "metric_2", "metrics", "percent_metrics", "timeseries_limit_metric"):
        value = params.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.append(item)
    return found


def load(folder: Path = TEMPLATES_DIR) -> TemplateSet:
    """Read and check every template under `folder`."""
    datasets_path = folder / "datasets.yaml"
    try:
        declared = DatasetsFile.model_validate(_read(datasets_path))
    except ValidationError as exc:
        raise TemplateError(f"{datasets_path}: invalid\n{_describe(exc)}") from exc
    datasets = {d.table: d for d in declared.datasets}
    if len(datasets) != len(declared.datasets):
        raise TemplateError(f"{datasets_path}: a table is declared twice")

    dashboards = []
    for path in sorted(folder.glob("*.yaml")):
        if path == datasets_path:
            continue
        try:
            template = DashboardTemplate.model_validate(_read(path))
        except ValidationError as exc:
            raise TemplateError(f"{path}: invalid dashboard template\n{_describe(exc)}") from exc
        if template.name != path.stem:
            raise TemplateError(f"{path}: name '{template.name}' must match the file name")
        for chart in template.charts:
            dataset = datasets.get(chart.dataset)
            if dataset is None:
                raise TemplateError(f"{path}: chart {chart.name}: no dataset '{chart.dataset}'"
                                    f" in datasets.yaml")
            if dataset.scope != template.scope:
                raise TemplateError(f"{path}: chart {chart.name}: dataset '{chart.dataset}' is"
                                    f" for the {dataset.scope} scope")
            unknown = [m for m in _metric_names(chart.params) if m not in dataset.metrics]
            if unknown:
                raise TemplateError(f"{path}: chart {chart.name}: unknown metrics {unknown}"
                                    f" (dataset '{chart.dataset}' has"
                                    f" {sorted(dataset.metrics)})")
        dashboards.append(template)
    return TemplateSet(datasets=datasets, dashboards=dashboards)
