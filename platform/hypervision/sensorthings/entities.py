"""The SensorThings data model over one member's data, as SQL.

What a member's SensorThings service holds (all read through the member's reader role):
- its own devices, as Things (with their Location when declared) and their measurements;
- the devices and measurements shared with it under agreements in force, read through the
  agreements' views (hypervision.sharing.agreements): the database checks the agreement
  and writes the read to both members' journals.

Mapping:
- Thing = a device (`@iot.id`: its DevEUI; a shared one: `<provider>.<agreement>.<id>`);
- Location and FeatureOfInterest = the device's declared position (same id as the Thing);
- Sensor = a device model; ObservedProperty = a metric (`fill.level`...);
- Datastream = one metric of one Thing (`<thing>~<metric>`);
- Observation = one measurement (`<thing>~<metric>~<epoch microseconds>`).
HistoricalLocations are always empty: positions are declared, not tracked.

Every entity set is a SELECT over two common tables, `devices` and `obs`, built per
request by `context()`; `$filter` and `$orderby` paths resolve through `Entity.columns`,
to-one navigation paths (`Datastream/ObservedProperty/name`) through `Entity.paths`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from hypervision.sensorthings.odata import QueryError

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
GEOJSON = "application/geo+json"


@dataclass(frozen=True)
class DeviceRow:
    thing_id: str
    device: str
    name: str
    model: str
    data_class: str
    lat: float | None
    lon: float | None
    provider: str | None = None
    agreement: str | None = None


@dataclass(frozen=True)
class Share:
    """An agreement in force whose views this member reads."""

    provider: str
    name: str
    schema: str

    @property
    def prefix(self) -> str:
        return f"{self.provider}.{self.name}."


@dataclass(frozen=True)
class Context:
    """The member's own devices (from the registry), its schema, and its shares."""

    schema: str
    own: Sequence[DeviceRow]
    shares: Sequence[Share]

    def ctes(self) -> sql.Composable:
        columns = sql.SQL("(thing_id, device, name, model, data_class, lat, lon, provider,"
                          " agreement)")
        parts: list[sql.Composable] = []
        if self.own:
            parts.append(sql.SQL("SELECT * FROM (VALUES {}) AS v {}").format(
                sql.SQL(", ").join(
                    sql.SQL("({}::text, {}::text, {}::text, {}::text, {}::text, {}::float8,"
                            " {}::float8, NULL::text, NULL::text)").format(
                        *(sql.Literal(v) for v in (d.thing_id, d.device, d.name, d.model,
                                                   d.data_class, d.lat, d.lon)))
                    for d in self.own), columns))
        obs: list[sql.Composable] = []
        if self.own:
            obs.append(sql.SQL("SELECT dev_eui AS thing_id, metric, time, value, unit FROM {}"
                               " WHERE dev_eui = ANY({})").format(
                sql.Identifier(self.schema, "measurements"),
                sql.Literal([d.device for d in self.own])))
        for share in self.shares:
            parts.append(sql.SQL(
                "SELECT {} || device, device, coalesce(name, device), model, data_class, lat,"
                " lon, {}::text, {}::text FROM {}").format(
                sql.Literal(share.prefix), sql.Literal(share.provider), sql.Literal(share.name),
                sql.Identifier(share.schema, "devices")))
            obs.append(sql.SQL("SELECT {} || device, metric, time, value, unit FROM {}").format(
                sql.Literal(share.prefix), sql.Identifier(share.schema, "measurements")))
        if not parts:
            parts.append(sql.SQL("SELECT NULL::text, NULL::text, NULL::text, NULL::text,"
                                 " NULL::text, NULL::float8, NULL::float8, NULL::text,"
                                 " NULL::text WHERE false"))
        if not obs:
            obs.append(sql.SQL("SELECT NULL::text, NULL::text, NULL::timestamptz,"
                               " NULL::float8, NULL::text WHERE false"))
        return sql.SQL("WITH devices {} AS ({}), obs (thing_id, metric, time, value, unit)"
                       " AS ({})").format(columns, sql.SQL(" UNION ALL ").join(parts),
                                          sql.SQL(" UNION ALL ").join(obs))


Render = Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class Relation:
    target: str
    # (target column, source column) pairs that join the related entities.
    on: tuple[tuple[str, str], ...]
    many: bool


@dataclass(frozen=True)
class Entity:
    name: str                       # the entity set, e.g. Things
    base: str                       # SELECT over `devices` and `obs`
    columns: dict[str, str]         # property path ('a/b') -> column of `base`
    render: Render
    relations: dict[str, Relation] = field(default_factory=dict)
    # To-one navigation paths to a column of this entity (saves a sub-select).
    paths: dict[str, str] = field(default_factory=dict)
    id_kind: str = "text"


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _links(entity: str, row: dict[str, Any], base: str, navs: Sequence[str]) -> dict[str, Any]:
    self_link = f"{base}/{entity}('{quote(row['id'])}')"
    return {"@iot.selfLink": self_link,
            **{f"{nav}@iot.navigationLink": f"{self_link}/{nav}" for nav in navs}}


def quote(value: str) -> str:
    return str(value).replace("'", "''")


def _thing(row: dict[str, Any], base: str) -> dict[str, Any]:
    properties = {"device": row["device"], "model": row["model"],
                  "data_class": row["data_class"]}
    if row["provider"]:
        properties |= {"provider": row["provider"], "agreement": row["agreement"]}
    return {"@iot.id": row["id"], **_links("Things", row, base,
                                           ("Locations", "Datastreams", "HistoricalLocations")),
            "name": row["name"],
            "description": f"{row['model']} ({row['data_class']})",
            "properties": properties}


def _point(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [row["lon"], row["lat"]]}


def _location(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("Locations", row, base,
                                           ("Things", "HistoricalLocations")),
            "name": row["name"], "description": f"Position of {row['name']}",
            "encodingType": GEOJSON, "location": _point(row)}


def _feature(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("FeaturesOfInterest", row, base, ("Observations",)),
            "name": row["name"], "description": f"Where {row['name']} measures",
            "encodingType": GEOJSON, "feature": _point(row)}


def _sensor(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("Sensors", row, base, ("Datastreams",)),
            "name": row["name"], "description": f"Device model {row['name']}",
            "encodingType": "text/plain", "metadata": row["name"]}


def _observed_property(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("ObservedProperties", row, base, ("Datastreams",)),
            "name": row["name"], "definition": f"urn:hypervision:metric:{row['name']}",
            "description": f"Metric {row['name']}"}


def _datastream(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("Datastreams", row, base,
                                           ("Thing", "Sensor", "ObservedProperty",
                                            "Observations")),
            "name": row["name"], "description": f"{row['metric']} of {row['thing_name']}",
            "unitOfMeasurement": {"name": row["unit"], "symbol": row["unit"],
                                  "definition": f"urn:hypervision:unit:{row['unit']}"},
            "observationType": OM_MEASUREMENT}


def _observation(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"], **_links("Observations", row, base,
                                           ("Datastream", "FeatureOfInterest")),
            "phenomenonTime": _iso(row["phenomenon_time"]),
            "resultTime": _iso(row["phenomenon_time"]), "result": row["result"]}


def _empty(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {"@iot.id": row["id"]}


THING_COLUMNS = {"id": "id", "name": "name", "description": "description",
                 "properties/device": "device", "properties/model": "model",
                 "properties/data_class": "data_class", "properties/provider": "provider",
                 "properties/agreement": "agreement"}
ENTITIES: dict[str, Entity] = {e.name: e for e in (
    Entity("Things",
           "SELECT thing_id AS id, name, model || ' (' || data_class || ')' AS description,"
           " device, model, data_class, provider, agreement FROM devices",
           THING_COLUMNS, _thing,
           {"Datastreams": Relation("Datastreams", (("thing_id", "id"),), True),
            "Locations": Relation("Locations", (("id", "id"),), True),
            "HistoricalLocations": Relation("HistoricalLocations", (("id", "id"),), True)}),
    Entity("Locations",
           "SELECT thing_id AS id, name, lat, lon FROM devices WHERE lat IS NOT NULL",
           {"id": "id", "name": "name"}, _location,
           {"Things": Relation("Things", (("id", "id"),), True),
            "HistoricalLocations": Relation("HistoricalLocations", (("id", "id"),), True)}),
    Entity("FeaturesOfInterest",
           "SELECT thing_id AS id, name, lat, lon FROM devices WHERE lat IS NOT NULL",
           {"id": "id", "name": "name"}, _feature,
           {"Observations": Relation("Observations", (("thing_id", "id"),), True)}),
    Entity("HistoricalLocations",
           "SELECT NULL::text AS id WHERE false", {"id": "id"}, _empty),
    Entity("Sensors", "SELECT DISTINCT model AS id, model AS name FROM devices",
           {"id": "id", "name": "name"}, _sensor,
           {"Datastreams": Relation("Datastreams", (("model", "id"),), True)}),
    Entity("ObservedProperties",
           "SELECT DISTINCT metric AS id, metric AS name FROM obs",
           {"id": "id", "name": "name"}, _observed_property,
           {"Datastreams": Relation("Datastreams", (("metric", "id"),), True)}),
    Entity("Datastreams",
           "SELECT s.thing_id || '~' || s.metric AS id, s.metric || ' — ' || d.name AS name,"
           " s.thing_id, d.name AS thing_name, s.metric, s.unit, d.model"
           " FROM (SELECT DISTINCT thing_id, metric, unit FROM obs) s"
           " JOIN devices d ON d.thing_id = s.thing_id",
           {"id": "id", "name": "name", "unitOfMeasurement/name": "unit",
            "unitOfMeasurement/symbol": "unit"}, _datastream,
           {"Thing": Relation("Things", (("id", "thing_id"),), False),
            "Sensor": Relation("Sensors", (("id", "model"),), False),
            "ObservedProperty": Relation("ObservedProperties", (("id", "metric"),), False),
            "Observations": Relation("Observations", (("thing_id", "thing_id"),
                                                      ("metric", "metric")), True)},
           paths={"Thing/id": "thing_id", "ObservedProperty/id": "metric",
                  "ObservedProperty/name": "metric", "Sensor/id": "model",
                  "Sensor/name": "model", "Thing/name": "thing_name"}),
    Entity("Observations",
           "SELECT thing_id || '~' || metric || '~'"
           " || (extract(epoch FROM time) * 1000000)::bigint AS id, time AS phenomenon_time,"
           " value AS result, thing_id, metric, thing_id || '~' || metric AS datastream"
           " FROM obs",
           {"id": "id", "phenomenonTime": "phenomenon_time", "resultTime": "phenomenon_time",
            "result": "result"}, _observation,
           {"Datastream": Relation("Datastreams", (("thing_id", "thing_id"),
                                                   ("metric", "metric")), False),
            "FeatureOfInterest": Relation("FeaturesOfInterest", (("id", "thing_id"),), False)},
           paths={"Datastream/id": "datastream", "Datastream/Thing/id": "thing_id",
                  "Datastream/ObservedProperty/id": "metric",
                  "Datastream/ObservedProperty/name": "metric",
                  "FeatureOfInterest/id": "thing_id"}),
)}


def resolver(entity: Entity, alias: str, depth: int = 0) -> Callable[[tuple[str, ...]],
                                                                     sql.Composable]:
    """Property paths of `entity` (rows aliased `alias`) as SQL: its columns, its known
    to-one paths, else a sub-select through a to-one navigation property."""

    def resolve(path: tuple[str, ...]) -> sql.Composable:
        text = "/".join(path)
        column = entity.columns.get(text) or entity.paths.get(text)
        if column is not None:
            return sql.Identifier(alias, column)
        relation = entity.relations.get(path[0])
        if relation is None or relation.many or len(path) < 2 or depth > 2:
            raise QueryError(f"{entity.name} have no property {text!r}")
        target = ENTITIES[relation.target]
        inner = f"n{depth}"
        return sql.SQL("(SELECT {} FROM ({}) AS {} WHERE {} LIMIT 1)").format(
            resolver(target, inner, depth + 1)(path[1:]), sql.SQL(target.base),
            sql.Identifier(inner), sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier(inner, t), sql.Identifier(alias, s))
                for t, s in relation.on))

    return resolve
