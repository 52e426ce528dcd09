"""A member on the second server gets its dashboards from there: Superset's connection
for it names that server, and the views its dashboards read work there, as its reader
role, with no catalogue rows on that server."""

from __future__ import annotations

import pytest

from hypervision import placement
from hypervision.superset import provision
from hypervision.superset.bundle import render
from hypervision.superset.templates import load
from hypervision.tenancy.spec import load_dir
from tests.scale.conftest import SCALE_TENANTS, TwoServers

pytestmark = pytest.mark.services


def test_superset_connects_to_the_members_server_and_every_dataset_is_there(
    two_servers: TwoServers,
) -> None:
    settings = two_servers.settings
    kappa = next(s for s in load_dir(SCALE_TENANTS) if s.name == "kappa")
    target = provision.member_target(settings, kappa, "second")
    assert target.sqlalchemy_uri.startswith("postgresql+psycopg2://kappa_reader:")
    assert target.sqlalchemy_uri.endswith(
        f"@127.0.0.1:{two_servers.second.pg_port}/{two_servers.second.pg_database}")
    assert provision.member_target(settings, kappa).sqlalchemy_uri.endswith(
        f":{settings.pg_port}/{settings.pg_database}")

    # The devices the dashboards list, read over TCP as Superset reads them.
    with placement.connect_as(settings, "second", "kappa_reader") as reader:
        assert reader.execute(
            "SELECT dev_eui, name, active FROM tenant_kappa.dash_devices ORDER BY 1"
        ).fetchall() == [("9a9a9a9a9a9a0001", "Water K1", True),
                         ("9a9a9a9a9a9a0002", "Air K2", True),
                         ("9a9a9a9a9a9a0003", "Lighting K3", True)]
        assert reader.execute("SELECT count(*) FROM tenant_kappa.dash_device_health"
                              ).fetchone() == (3,)
    # Every dataset of the member's dashboards has its columns on that server (render
    # refuses a label naming a column that is not there).
    with placement.connect_admin(settings, "second") as second:
        columns = provision._columns(second, "tenant_kappa")
    templates = load()
    bundle = render(target, templates.for_scope("member"), templates, columns)
    datasets = [o for o in bundle.objects if o.kind == "dataset"]
    assert len(datasets) > 10
