"""Fixtures of the transparency tests: a member `civic` with devices of three classes
(one of them removed since), the public role, and the public router in an app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hypervision.db import connect_admin
from hypervision.settings import Settings
from hypervision.tenancy.spec import TenantSpec
from tests.public.members import apply_member, remove_member, spec_from

CIVIC = """
version: v1
kind: tenant
name: civic
identity: {name: Ville de Civique (test), kind: commune, siren: "210000999"}
contacts:
  dpo: {name: Délégation Civique, email: dpo@civic.example.org, phone: "02 98 00 00 00"}
users:
  - {name: Agent Confidentiel, email: agent.confidentiel@civic.example.org, rights: [admin]}
retention: {raw: 90, water-consumption: 730, waste-fill: 365}
export_recipients:
  - {name: Régie des eaux du Pays, email: regie@example.org, third_party: true}
  - {name: Service des finances, third_party: false}
devices:
  - dev_eui: "c1c1c1c1c1c10001"
    name: Compteur de l'école Jules Ferry
    model: milesight-em300-di
    data_class: water-consumption
    purpose: Relever la consommation d'eau de l'école pour repérer les fuites.
    installed_on: 2024-03-12
    location: {lat: 48.0, lon: -4.1, address: 12 rue des Lilas, building: École Jules Ferry}
    variables: {litres_per_pulse: "10"}
  - dev_eui: "c1c1c1c1c1c10002"
    name: Conteneur verre place du Marché
    model: milesight-em400-mud
    data_class: waste-fill
    public_description: Ce capteur mesure le remplissage du conteneur, rien d'autre.
    location: {lat: 48.0, lon: -4.1, address: Place du Marché}
    variables: {container_depth_mm: "1500"}
  - dev_eui: "c1c1c1c1c1c10003"
    name: Air salle 2
    model: milesight-am103
    data_class: indoor-air
    location: {lat: 48.0, lon: -4.1, building: École Jules Ferry, room: Salle 2}
"""
# The same member once its fourth device was taken down.
REMOVED = """
  - dev_eui: "c1c1c1c1c1c10004"
    name: Ancien capteur d'air
    model: milesight-am103
    data_class: indoor-air
"""


@dataclass
class Civic:
    spec: TenantSpec
    public_ids: dict[str, str]  # DevEUI -> public id
    settings: Settings


@pytest.fixture(scope="session")
def civic(platform_db: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Civic]:
    from hypervision.public.access import ensure_public_role

    tmp: Path = tmp_path_factory.mktemp("civic")
    with connect_admin(platform_db) as admin:
        apply_member(admin, platform_db, spec_from(tmp, CIVIC + REMOVED))
        spec = spec_from(tmp, CIVIC)
        apply_member(admin, platform_db, spec)
        ensure_public_role(admin, platform_db)
        ids = dict(admin.execute(
            "SELECT dev_eui, public_id FROM hv.devices WHERE member_slug = 'civic'"
        ).fetchall())
        yield Civic(spec, ids, platform_db)
        remove_member(admin, spec)


@pytest.fixture(scope="session")
def public_app(civic: Civic) -> Any:
    from fastapi import FastAPI

    from hypervision.public.pages import router

    app = FastAPI()
    app.include_router(router)
    return app


@pytest.fixture
def client(public_app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(public_app) as c:
        yield c
