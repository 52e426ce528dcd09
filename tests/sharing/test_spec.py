"""What a tenant file may declare about sharing: mistakes are refused with a message that
names the agreement, before anything touches the database."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hypervision.tenancy.spec import SpecError, TenantSpec, check_together

SHARE = {"name": "waste-to-epci", "recipient": "epci_b", "data_classes": ["waste-fill"],
         "purpose": "Plan the collection rounds", "legal_basis": "public-task",
         "starts": "2026-01-01", "ends": "2027-01-01"}


def member(name: str = "commune_a", **extra: Any) -> dict[str, Any]:
    return {"version": "v1", "kind": "tenant", "name": name,
            "identity": {"name": f"Member {name}", "kind": "commune"},
            "contacts": {"dpo": {"name": "DPO"}},
            "devices": [{"dev_eui": "c0c0c0c0c0c00001", "name": "Bin",
                         "model": "milesight-em400-mud", "data_class": "waste-fill"}],
            **extra}


def refused(share: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as error:
        TenantSpec.model_validate(member(shares=[share]))
    return str(error.value)


def test_a_well_formed_agreement_is_accepted() -> None:
    spec = TenantSpec.model_validate(
        member(shares=[{**SHARE, "devices": ["C0:C0:C0:C0:C0:C0:00:01"]}]))
    assert spec.shares[0].devices == ["c0c0c0c0c0c00001"]
    assert spec.shares[0].ends_at.isoformat() == "2027-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("change", "message"), [
    ({"recipient": None}, "either a `recipient` member or a `partner`"),
    ({"partner": {"name": "Université"}}, "either a `recipient` member or a `partner`"),
    ({"recipient": None, "partner": {"name": "Université"}}, "give it a `delivery`"),
    ({"data_classes": []}, "share some `data_classes` or `devices`"),
    ({"ends": "2025-12-31"}, "`ends` must come after `starts`"),
    ({"devices": ["ffffffffffffffff"]}, "device ffffffffffffffff is not in `devices`"),
    ({"recipient": "commune_a"}, "does not share with itself"),
    ({"name": "Waste_To"}, "name"),
    ({"purpose": "why"}, "purpose"),
    ({"delivery": {"schedule": "daily"}}, "either by `sftp` or to a `url`"),
    ({"delivery": {"url": "ftp://x"}}, "url"),
])
def test_mistakes_are_refused(change: dict[str, Any], message: str) -> None:
    assert message in refused({**SHARE, **change})


def test_two_agreements_of_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match="declared twice"):
        TenantSpec.model_validate(member(shares=[SHARE, SHARE]))


def test_the_recipient_must_be_a_declared_member() -> None:
    provider = TenantSpec.model_validate(member(shares=[SHARE]))
    with pytest.raises(SpecError, match="recipient 'epci_b' is not a declared member"):
        check_together([provider])
    check_together([provider, TenantSpec.model_validate(member("epci_b", devices=[]))])
