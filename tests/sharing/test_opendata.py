"""Open data as a harvester finds it: the DCAT-AP catalogue read as RDF (JSON-LD), each
dataset's licence, distribution and Table Schema followed by their links, and the CSV
checked against its schema, with small groups suppressed."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import rdflib
from fastapi.testclient import TestClient

from hypervision import opendata
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from hypervision.jobs import collect_schedule
from hypervision.sharing import opendata_catalogue
from tests.sharing.conftest import T0, Story

pytestmark = pytest.mark.services

BASE = "https://hypervision.example.org"
TODAY = T0.date() + dt.timedelta(days=1)
QUERY = """
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
SELECT ?id ?title ?licence ?publisher ?download ?schema ?media WHERE {
    ?catalogue a dcat:Catalog ; dcat:dataset ?dataset .
    ?dataset a dcat:Dataset ; dct:identifier ?id ; dct:title ?title ; dct:license ?licence ;
             dct:publisher/foaf:name ?publisher ; dcat:distribution ?d .
    ?d a dcat:Distribution ; dcat:downloadURL ?download ; dct:conformsTo ?schema ;
       dcat:mediaType ?media .
} ORDER BY ?id
"""


@pytest.fixture
def published(story: Story, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = story.settings.model_copy(update={
        "opendata_dir": tmp_path_factory.mktemp("opendata"), "opendata_k": 2,
        "public_base_url": BASE})
    story.apply()
    with connect_admin(settings) as conn:
        opendata_catalogue.publish(conn, settings, today=TODAY)
    with TestClient(create_app(settings)) as client:
        yield client


def local(url: str) -> str:
    assert url.startswith(BASE + "/")
    return urlparse(url).path


def test_a_harvester_reads_the_catalogue_and_follows_its_links(published: TestClient,
                                                               story: Story) -> None:
    response = published.get("/opendata/catalog.jsonld")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    graph = rdflib.Graph().parse(data=response.text, format="json-ld")
    found = [tuple(str(v) for v in row) for row in graph.query(QUERY)]  # type: ignore[union-attr]
    assert [(r[0], r[1], r[2], r[3]) for r in found] == [
        ("commune_a/fill", "Remplissage des conteneurs de la commune A",
         "https://www.etalab.gouv.fr/licence-ouverte-open-licence/", "Commune A (test)"),
        ("commune_a/water", "Consommation d'eau de la commune A",
         "https://opendatacommons.org/licenses/odbl/1-0/", "Commune A (test)")]
    with connect_admin(story.settings) as conn:
        expected = opendata.member_aggregates(conn, "commune_a", "fill", T0.date(),
                                              T0.date(), 2)
    tables = {}
    for identifier, _, _, _, download, schema_url, media in found:
        assert media.endswith("/text/csv")
        schema = published.get(local(schema_url)).json()
        names = [f["name"] for f in schema["fields"]]
        body = published.get(local(download))
        assert body.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.text)))
        assert rows and list(rows[0]) == names  # the CSV follows its published schema
        for row in rows:
            dt.date.fromisoformat(row["day"])
            assert row["suppressed"] in schema["fields"][4]["trueValues"] + \
                schema["fields"][4]["falseValues"]
            if row["suppressed"] == "false":
                float(row["value"])
                int(row["devices"])
        tables[identifier] = rows
    # Two containers: published; one water meter alone: suppressed, no value.
    fill = [r for r in tables["commune_a/fill"] if r["day"] == T0.date().isoformat()]
    assert fill == [{"day": T0.date().isoformat(), "area": "Commune A (test)",
                     "value": str(expected[0].value), "devices": "2", "suppressed": "false"}]
    water = tables["commune_a/water"]
    assert water and all(r == {**r, "value": "", "devices": "", "suppressed": "true"}
                         for r in water)


def test_only_published_files_can_be_fetched(published: TestClient) -> None:
    for path in ("/opendata/commune_a/secret.csv", "/opendata/commune_a/..%2Fcatalog.jsonld",
                 "/opendata/epci_b/fill.csv", "/opendata/Commune_A/fill.csv"):
        assert published.get(path).status_code == 404, path


def test_the_publication_is_journalled_and_scheduled(published: TestClient,
                                                     story: Story) -> None:
    with connect_admin(story.settings) as conn:
        row = conn.execute("SELECT params FROM hv.audit_log WHERE member_slug = 'commune_a'"
                           " AND action = 'opendata.published' ORDER BY id DESC"
                           " LIMIT 1").fetchone()
    assert row is not None and row[0]["k"] == 2
    assert {d["dataset"] for d in row[0]["datasets"]} == {"fill", "water"}
    assert collect_schedule()["opendata-publication"]["task"] == \
        "hypervision.jobs.sharing.publish_opendata"
