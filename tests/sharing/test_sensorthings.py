"""The SensorThings API 1.1 (read), against the requirements of its conformance classes
(OGC 18-088: /req/resource-path/*, /req/request-data/*, /req/datamodel/*), then as a real
SensorThings client reads it (FROST's Python client, over HTTP).

Commune A's person reads A's own devices; intercommunality B's reads what A shares with
it (the two containers' fill level) and nothing else of A."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hypervision import accounts
from hypervision.api.main import create_app
from hypervision.db import connect_admin
from tests.conftest import PORT_BASE, wait_for
from tests.sharing.conftest import BINS, METER, Story

pytestmark = pytest.mark.services

A = "/sta/v1.1/commune_a"
B = "/sta/v1.1/epci_b"
SHARED = [f"commune_a.waste-to-epci.{eui}" for eui in BINS]


def token(story: Story, email: str) -> dict[str, str]:
    with connect_admin(story.settings) as conn:
        issued = accounts.create_token(conn, accounts.Who("system:test-setup"), email=email,
                                       expires_at=dt.datetime.now(dt.UTC)
                                       + dt.timedelta(hours=1))
    return {"Authorization": f"Bearer {issued.secret}"}


@pytest.fixture(scope="module")
def in_force(story: Story) -> Story:
    story.apply()  # whatever ran before, the agreements are in force again
    return story


@pytest.fixture(scope="module")
def http(in_force: Story) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    with TestClient(create_app(in_force.settings)) as client:
        yield (client, token(in_force, "ada@commune-a.example.org"),
               token(in_force, "bea@epci-b.example.org"))


def get(http: Any, who: str, path: str, **params: str) -> httpx.Response:
    client, ada, bea = http
    return client.get(path, headers=ada if who == "ada" else bea, params=params)


def test_the_service_root_lists_the_entity_sets_and_conformance(http: Any) -> None:
    # /req/resource-path/resource-path-to-entities: the service root's `value` names
    # every entity set with its URL; serverSettings lists the conformance classes.
    body = get(http, "ada", A).json()
    names = {e["name"]: e["url"] for e in body["value"]}
    assert set(names) == {"Things", "Locations", "HistoricalLocations", "Datastreams",
                          "Sensors", "ObservedProperties", "Observations",
                          "FeaturesOfInterest"}
    assert names["Things"].endswith(f"{A}/Things")
    assert any(c.endswith("/req/request-data") for c in body["serverSettings"]["conformance"])


def test_entities_carry_their_id_self_link_and_navigation_links(http: Any) -> None:
    # /req/datamodel/*: @iot.id, @iot.selfLink and a navigationLink per relation.
    things = get(http, "ada", f"{A}/Things").json()["value"]
    assert sorted(t["@iot.id"] for t in things) == sorted([*BINS, METER])
    bin_ = next(t for t in things if t["@iot.id"] == BINS[0])
    assert bin_["@iot.selfLink"].endswith(f"{A}/Things('{BINS[0]}')")
    assert bin_["Datastreams@iot.navigationLink"].endswith(f"Things('{BINS[0]}')/Datastreams")
    assert bin_["name"] == "Bin Mairie" and bin_["properties"]["data_class"] == "waste-fill"
    location = get(http, "ada", f"{A}/Things('{BINS[0]}')/Locations").json()["value"][0]
    assert location["encodingType"] == "application/geo+json"
    assert location["location"] == {"type": "Point", "coordinates": [-4.10, 47.99]}


def test_paths_address_an_entity_its_relations_a_property_and_its_value(http: Any) -> None:
    # /req/resource-path/resource-path-to-entities.
    one = get(http, "ada", f"{A}/Things('{BINS[1]}')").json()
    assert one["@iot.id"] == BINS[1] and "value" not in one
    streams = get(http, "ada", f"{A}/Things('{BINS[1]}')/Datastreams").json()["value"]
    assert sorted(s["@iot.id"] for s in streams) == [f"{BINS[1]}~fill.level",
                                                      f"{BINS[1]}~temperature"]
    level = next(s for s in streams if s["@iot.id"].endswith("fill.level"))
    assert level["unitOfMeasurement"]["symbol"] == "%"
    thing = get(http, "ada", f"{A}/Datastreams('{level['@iot.id']}')/Thing").json()
    assert thing["@iot.id"] == BINS[1]
    sensor = get(http, "ada", f"{A}/Datastreams('{level['@iot.id']}')/Sensor").json()
    assert sensor["@iot.id"] == "milesight-em400-mud"
    assert get(http, "ada", f"{A}/Things('{BINS[1]}')/name").json() == {"name": "Bin Port"}
    assert get(http, "ada", f"{A}/Things('{BINS[1]}')/name/$value").text == "Bin Port"
    assert get(http, "ada", f"{A}/Things('ffffffffffffffff')").status_code == 404
    assert get(http, "ada", f"{A}/Nonsense").status_code == 404


def test_top_skip_count_and_next_link(http: Any) -> None:
    # /req/request-data/top, /skip, /count and pagination (@iot.nextLink).
    path = f"{A}/Datastreams('{BINS[0]}~fill.level')/Observations"
    page = get(http, "ada", path, **{"$top": "25", "$count": "true",
                                     "$orderby": "phenomenonTime asc"}).json()
    assert page["@iot.count"] == 60 and len(page["value"]) == 25
    assert "%24skip=25" in page["@iot.nextLink"] and "%24top=25" in page["@iot.nextLink"]
    rest = get(http, "ada", path, **{"$top": "25", "$skip": "50",
                                     "$orderby": "phenomenonTime asc"}).json()
    assert [o["result"] for o in rest["value"]] == [float(m) for m in range(50, 60)]
    assert "@iot.nextLink" not in rest and "@iot.count" not in rest


def test_orderby_filter_and_select(http: Any) -> None:
    # /req/request-data/orderby, /filter, /select.
    path = f"{A}/Observations"
    top = get(http, "ada", path, **{
        "$filter": f"Datastream/id eq '{BINS[0]}~fill.level' and result gt 55",
        "$orderby": "result desc"}).json()["value"]
    assert [o["result"] for o in top] == [59.0, 58.0, 57.0, 56.0]
    since = get(http, "ada", path, **{
        "$filter": "Datastream/ObservedProperty/name eq 'fill.level' and "
                   "phenomenonTime ge 2026-01-05T08:58:00Z", "$count": "true"}).json()
    assert since["@iot.count"] == 4  # two minutes of two containers
    bins = get(http, "ada", f"{A}/Things", **{"$filter": "startswith(name, 'Bin')",
                                              "$select": "id,name"}).json()["value"]
    assert bins == [{"@iot.id": BINS[0], "name": "Bin Mairie"},
                    {"@iot.id": BINS[1], "name": "Bin Port"}]
    # A to-one path the service has no shortcut for goes through a sub-select.
    named = get(http, "ada", f"{A}/Datastreams", **{
        "$filter": "Thing/properties/data_class eq 'water-consumption'"}).json()["value"]
    assert [d["@iot.id"] for d in named] == [f"{METER}~water.index"]


def test_expand_one_level(http: Any) -> None:
    # /req/request-data/expand, with nested options; deeper is refused.
    thing = get(http, "ada", f"{A}/Things('{BINS[0]}')", **{
        "$expand": "Datastreams($select=id;$orderby=id desc),Locations"}).json()
    assert thing["Datastreams"] == [{"@iot.id": f"{BINS[0]}~temperature"},
                                    {"@iot.id": f"{BINS[0]}~fill.level"}]
    assert len(thing["Locations"]) == 1
    obs = get(http, "ada", f"{A}/Observations", **{"$top": "1", "$expand": "Datastream"})
    assert obs.json()["value"][0]["Datastream"]["@iot.id"].count("~") == 1
    deeper = get(http, "ada", f"{A}/Things", **{"$expand": "Datastreams/Observations"})
    assert deeper.status_code == 400


@pytest.mark.parametrize("params", [
    {"$filter": "name eq"}, {"$filter": "secret eq 1"}, {"$top": "-1"},
    {"$orderby": "name; DROP TABLE x"}, {"$nonsense": "1"},
    {"$filter": "name eq 'x') OR (1 eq 1"},
])
def test_bad_options_are_a_400_with_a_message(http: Any, params: dict[str, str]) -> None:
    response = get(http, "ada", f"{A}/Things", **params)
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["message"]


def test_the_recipient_sees_the_shared_devices_only(http: Any) -> None:
    things = get(http, "bea", f"{B}/Things").json()["value"]
    assert sorted(t["@iot.id"] for t in things) == SHARED
    assert {t["properties"]["agreement"] for t in things} == {"waste-to-epci"}
    streams = get(http, "bea", f"{B}/Datastreams").json()["value"]
    assert sorted(s["@iot.id"] for s in streams) == [f"{s}~fill.level" for s in SHARED]
    # A's own addresses are not B's: 404, like a stranger's.
    assert get(http, "bea", f"{B}/Things('{BINS[0]}')").status_code == 404
    assert get(http, "bea", f"{A}/Things").status_code == 404


def test_each_request_is_journalled_for_both_members(in_force: Story, http: Any) -> None:
    with connect_admin(in_force.settings) as conn:
        last = conn.execute("SELECT max(id) FROM hv.audit_log").fetchone()[0]  # type: ignore[index]
        get(http, "bea", f"{B}/Observations", **{"$top": "1"})
        rows = conn.execute("SELECT member_slug, action, source FROM hv.audit_log"
                            " WHERE id > %s ORDER BY id", (last,)).fetchall()
    assert ("epci_b", "sensorthings.read", "api") in rows
    for member in ("commune_a", "epci_b"):
        assert (member, "share.read", "sql") in rows and (member, "share.read", "api") in rows


SERVE = """
import typer
from hypervision.commands import api
app = typer.Typer()
@app.callback()
def main() -> None: ...
api.register(app)
app()
"""


def test_a_sensorthings_client_reads_the_shared_data_over_http(in_force: Story) -> None:
    """FROST's Python client (frost-sta-client), as a data platform would use it."""
    import frost_sta_client as fsc
    from requests import PreparedRequest

    bearer = token(in_force, "bea@epci-b.example.org")["Authorization"]

    class Bearer(fsc.AuthHandler):  # type: ignore[misc]
        def add_auth_header(self) -> Any:
            def sign(request: PreparedRequest) -> PreparedRequest:
                request.headers["Authorization"] = bearer
                return request
            return sign

    port = PORT_BASE + 71
    log = open(in_force.settings.data_dir / "log" / "sta-api.log", "ab")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-c", SERVE, "api", "--port", str(port)],
                              env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=60, what="the API to answer")
        service = fsc.SensorThingsService(f"{base}/sta/v1.1/epci_b", auth_handler=Bearer())
        things = list(service.things().query().filter("properties/provider eq 'commune_a'")
                      .list())
        assert sorted(t.id for t in things) == SHARED
        stream = service.datastreams().find(f"{SHARED[0]}~fill.level")
        assert stream.name.startswith("fill.level")
        # The client follows @iot.nextLink page after page.
        observations = list(service.observations().query().top(50).list())
        assert len(observations) == 120
        assert sorted({o.result for o in observations})[-1] == 59.0
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
