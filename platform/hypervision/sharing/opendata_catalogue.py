"""Open data published by the platform: CSV files, their Table Schemas and a DCAT-AP
catalogue in JSON-LD, under HV_OPENDATA_DIR, served without a token at `/opendata/`.

Members declare their open datasets in their tenant file (`opendata:`, tenancy.spec.
OpenDataset). `publish()` (the daily job hypervision.jobs.sharing.publish_opendata):

1. computes each dataset's k-suppressed aggregates (hypervision.opendata, k =
   HV_OPENDATA_K) over its last `days` days, to yesterday;
2. writes `<member>/<kind>.csv` and its Table Schema `<member>/<kind>.schema.json`
   (https://specs.frictionlessdata.io/table-schema/): every column typed and described;
3. writes `catalog.jsonld`, a DCAT-AP catalogue: one dcat:Dataset per dataset with its
   publisher, contact point, licence (Etalab Licence Ouverte 2.0 unless declared
   otherwise), period, keywords and one dcat:Distribution (the CSV, conforming to its
   schema), so that harvesters (data.gouv.fr, CKAN, udata) find them on their own;
4. records one `opendata.published` entry per member in its journal.
Each file is written under a temporary name and renamed: a reader never sees half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import psycopg

from hypervision import audit, opendata
from hypervision.settings import Settings
from hypervision.tenancy.spec import OpenDataset

LICENCES = {
    "etalab-2.0": ("https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
                   "Licence Ouverte / Open Licence version 2.0"),
    "odbl-1.0": ("https://opendatacommons.org/licenses/odbl/1-0/",
                 "Open Database License (ODbL) 1.0"),
    "cc-by-4.0": ("https://creativecommons.org/licenses/by/4.0/",
                  "Creative Commons Attribution 4.0"),
}
CSV_MEDIA_TYPE = "http://www.iana.org/assignments/media-types/text/csv"
CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
FILE = re.compile(r"^(water|fill)\.(csv|schema\.json)$")
UNITS = {"water": "litres consumed in the area that day",
         "fill": "mean fill level of the area's containers that day, in %"}


def folder(settings: Settings) -> Path:
    return settings.opendata_dir or settings.data_dir / "opendata"


def licence(declared: str) -> tuple[str, str]:
    """(IRI, label) of a dataset's licence: a known short name, or the URL given."""
    return LICENCES.get(declared, (declared, declared))


def table_schema(kind: str) -> dict[str, Any]:
    return {
        "fields": [
            {"name": "day", "type": "date", "format": "%Y-%m-%d",
             "description": "Calendar day, Europe/Paris.", "constraints": {"required": True}},
            {"name": "area", "type": "string", "description": "Commune or district.",
             "constraints": {"required": True}},
            {"name": "value", "type": "number",
             "description": f"{UNITS[kind].capitalize()}; empty when suppressed."},
            {"name": "devices", "type": "integer",
             "description": "Devices in the group; empty when suppressed."},
            {"name": "suppressed", "type": "boolean", "trueValues": ["true"],
             "falseValues": ["false"],
             "description": "True when fewer than k devices contributed (k-anonymity)."},
        ],
        "primaryKey": ["day", "area"],
        "missingValues": [""],
    }


def _csv(rows: list[opendata.Aggregate]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "area", "value", "devices", "suppressed"])
    for r in rows:
        writer.writerow([r.day.isoformat(), r.area, "" if r.value is None else r.value,
                         "" if r.devices is None else r.devices,
                         "true" if r.suppressed else "false"])
    return out.getvalue().encode("utf-8")


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(body)
    os.replace(partial, path)


def _dataset(base: str, member: dict[str, Any], ds: OpenDataset, first: dt.date,
             last: dt.date, size: int, now: dt.datetime) -> dict[str, Any]:
    url = f"{base}/opendata/{member['slug']}/{ds.kind}"
    licence_iri, licence_label = licence(ds.licence)
    dpo = member["spec"].get("contacts", {}).get("dpo", {})
    dataset: dict[str, Any] = {
        "@id": url, "@type": "dcat:Dataset",
        "dct:identifier": f"{member['slug']}/{ds.kind}",
        "dct:title": ds.title,
        "dct:description": ds.description or f"{UNITS[ds.kind].capitalize()}, per area and"
                           " day; groups of fewer than k devices are suppressed.",
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": member["name"]},
        "dct:license": {"@id": licence_iri, "dct:title": licence_label},
        "dct:modified": {"@value": now.isoformat(), "@type": "xsd:dateTime"},
        "dct:temporal": {"@type": "dct:PeriodOfTime",
                         "dcat:startDate": {"@value": first.isoformat(), "@type": "xsd:date"},
                         "dcat:endDate": {"@value": last.isoformat(), "@type": "xsd:date"}},
        "dct:accrualPeriodicity": {"@id": "http://publications.europa.eu/resource/authority/"
                                          "frequency/DAILY"},
        "dcat:keyword": ds.keywords or [ds.kind],
        "dcat:distribution": [{
            "@id": f"{url}.csv", "@type": "dcat:Distribution",
            "dct:title": f"{ds.title} (CSV)",
            "dcat:accessURL": {"@id": f"{url}.csv"},
            "dcat:downloadURL": {"@id": f"{url}.csv"},
            "dcat:mediaType": {"@id": CSV_MEDIA_TYPE},
            "dct:format": "CSV",
            "dct:conformsTo": {"@id": f"{url}.schema.json"},
            "dct:license": {"@id": licence_iri},
            "dcat:byteSize": {"@value": str(size), "@type": "xsd:decimal"},
        }],
    }
    if dpo.get("email"):
        dataset["dcat:contactPoint"] = {"@type": "vcard:Kind", "vcard:fn": dpo.get("name", ""),
                                        "vcard:hasEmail": {"@id": f"mailto:{dpo['email']}"}}
    return dataset


def publish(conn: psycopg.Connection, settings: Settings, today: dt.date | None = None,
            actor: str = "system:opendata", source: str = "job") -> dict[str, Any]:
    """Write every member's open datasets and the catalogue; returns the catalogue."""
    today = today or dt.datetime.now(dt.UTC).date()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = settings.public_base_url.rstrip("/")
    root = folder(settings)
    members = conn.execute(
        "SELECT slug, name, spec FROM hv.members WHERE NOT suspended"
        " AND jsonb_array_length(coalesce(spec -> 'opendata', '[]')) > 0 ORDER BY slug"
    ).fetchall()
    datasets = []
    for slug, name, spec in members:
        member = {"slug": slug, "name": name, "spec": spec}
        published = []
        for raw in spec["opendata"]:
            ds = OpenDataset.model_validate(raw)
            first, last = today - dt.timedelta(days=ds.days), today - dt.timedelta(days=1)
            rows = opendata.member_aggregates(conn, slug, ds.kind, first, last,
                                              settings.opendata_k)
            body = _csv(rows)
            _write(root / slug / f"{ds.kind}.csv", body)
            _write(root / slug / f"{ds.kind}.schema.json",
                   json.dumps(table_schema(ds.kind), indent=2).encode())
            datasets.append(_dataset(base, member, ds, first, last, len(body), now))
            published.append({"dataset": ds.kind, "rows": len(rows),
                              "suppressed": sum(r.suppressed for r in rows)})
        audit.record(conn, actor=actor, member=slug, action="opendata.published",
                     target=f"opendata/{slug}", params={"datasets": published,
                                                        "k": settings.opendata_k},
                     source=source)
    catalogue = {
        "@context": CONTEXT, "@id": f"{base}/opendata/catalog.jsonld", "@type": "dcat:Catalog",
        "dct:title": "Hypervision — données ouvertes des membres",
        "dct:description": "Agrégats quotidiens des capteurs des collectivités membres ;"
                           " les groupes de moins de k capteurs sont masqués.",
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": "Hypervision"},
        "dct:modified": {"@value": now.isoformat(), "@type": "xsd:dateTime"},
        "foaf:homepage": {"@id": f"{base}/opendata/"},
        "dcat:dataset": datasets,
    }
    _write(root / "catalog.jsonld", json.dumps(catalogue, ensure_ascii=False,
                                               indent=2).encode())
    return catalogue
