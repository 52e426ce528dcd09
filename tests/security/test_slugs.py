"""Finding 10: member slugs cannot collide with the platform's roles, and a slug holding
`_owner` gets correct grants from the tenant migrations."""

from __future__ import annotations

import psycopg
import pytest
from pydantic import ValidationError

from hypervision.settings import Settings
from hypervision.tenancy import apply as tenancy
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue

BASE = {"version": "v1", "kind": "tenant",
        "identity": {"name": "Commune test", "kind": "commune", "siren": "210000999"},
        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}}}


@pytest.mark.parametrize("slug", ["hv_api", "hv_operator", "hv", "hv_x"])
def test_it_refuses_a_slug_in_the_platforms_role_namespace(slug: str) -> None:
    with pytest.raises(ValidationError, match="reserved"):
        TenantSpec.model_validate({**BASE, "name": slug})


def test_it_accepts_an_ordinary_slug_that_merely_contains_hv() -> None:
    assert TenantSpec.model_validate({**BASE, "name": "chv_x"}).name == "chv_x"


@pytest.mark.services
def test_a_slug_containing_owner_gets_its_own_writer_and_reader_grants(
    platform_db: Settings, admin: psycopg.Connection
) -> None:
    spec = TenantSpec.model_validate({**BASE, "name": "sand_owner_bay"})
    tenancy.apply(admin, [spec], Catalogue.load(), platform_db, log=lambda _: None)
    check = ("SELECT has_table_privilege(%s, %s, %s)")
    # 0040 grants the writer SELECT, INSERT, UPDATE on downlinks; 0090 takes INSERT back.
    assert admin.execute(check, ("sand_owner_bay_writer", "tenant_sand_owner_bay.downlinks",
                                 "UPDATE")).fetchone() == (True,)
    assert admin.execute(check, ("sand_owner_bay_writer", "tenant_sand_owner_bay.downlinks",
                                 "INSERT")).fetchone() == (False,)
    assert admin.execute(check, ("sand_owner_bay_reader", "tenant_sand_owner_bay.dash_devices",
                                 "SELECT")).fetchone() == (True,)
