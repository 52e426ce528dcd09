"""The pydantic models of the syndicate's own declarations, under `network/` (setting
`HV_NETWORK_DIR`; every field is documented in network/README.md):

- `gateways.yaml` (`kind: gateway-assets`): the network's gateways as assets: location,
  antenna height, supplier, commissioning date, purchase price, depreciation period and
  the members co-funding each one with their shares;
- `costs.yaml` (`kind: cost-model`): the network's yearly costs and the key by which each
  is shared among members (hypervision.syndicate.costs);
- `suppliers.yaml` (`kind: suppliers`): who serves which brick of the network and within
  how many hours they must intervene (hypervision.syndicate.suppliers).

Files are validated strictly, as tenant files are: an unknown or misspelt field is an
error naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EUI = re.compile(r"^[0-9a-f]{16}$")
Brick = Literal["core-network", "hypervision", "radio-network", "sensors"]
Key = Literal["devices", "uplinks", "gateways", "fixed"]


class NetworkSpecError(Exception):
    """A file under network/ is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Place(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude: float | None = Field(default=None, description="Ground altitude, metres.")


class CoFunder(_Strict):
    member: str = Field(pattern=SLUG, description="A member's slug.")
    share: Decimal = Field(gt=0, le=1, description="Its share of the gateway, e.g. 0.5.")


class GatewayAsset(_Strict):
    """One gateway of the network, as an asset the members paid for."""

    gateway_id: str = Field(description="16 hex digits, as in ChirpStack.")
    name: str = Field(min_length=1)
    location: Place
    antenna_height_m: float = Field(ge=0, description="Antenna height above ground, metres.")
    supplier: str = Field(pattern=NAME, description="A supplier of suppliers.yaml.")
    commissioned_on: dt.date
    decommissioned_on: dt.date | None = None
    purchase_price: Decimal = Field(ge=0, description="Purchase and installation, currency units.")
    depreciation_years: int = Field(ge=1, le=30)
    cofunders: list[CoFunder] = Field(min_length=1)

    @field_validator("gateway_id", mode="before")
    @classmethod
    def _eui(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower().replace(":", "").replace("-", "")
            if not EUI.match(value):
                raise ValueError("must be 16 hexadecimal digits")
        return value

    @model_validator(mode="after")
    def _shares(self) -> GatewayAsset:
        total = sum((c.share for c in self.cofunders), Decimal(0))
        if total != 1:
            raise ValueError(f"co-funders' shares must add up to 1 (they add up to {total})")
        members = [c.member for c in self.cofunders]
        if len(set(members)) != len(members):
            raise ValueError("a member is listed twice among the co-funders")
        if self.decommissioned_on is not None and self.decommissioned_on <= self.commissioned_on:
            raise ValueError("decommissioned_on must come after commissioned_on")
        return self


class GatewayAssets(_Strict):
    version: Literal["v1"]
    kind: Literal["gateway-assets"]
    gateways: list[GatewayAsset] = Field(default_factory=list)

    @field_validator("gateways")
    @classmethod
    def _unique(cls, gateways: list[GatewayAsset]) -> list[GatewayAsset]:
        ids = [g.gateway_id for g in gateways]
        if len(set(ids)) != len(ids):
            raise ValueError("a gateway is declared twice")
        return gateways


class Cost(_Strict):
    """One yearly cost of the network and the key that shares it among members."""

    name: str = Field(pattern=NAME)
    label: str = Field(min_length=1, description="As printed on statements.")
    amount: Decimal = Field(ge=0)
    key: Key
    weights: dict[str, Decimal] = Field(
        default_factory=dict,
        description="For key `fixed`: each member's weight (default: equal shares).",
    )

    @model_validator(mode="after")
    def _weights_only_fixed(self) -> Cost:
        if self.weights and self.key != "fixed":
            raise ValueError("weights apply to key `fixed` only")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        return self


class CostYear(_Strict):
    costs: list[Cost] = Field(default_factory=list)
    gateway_depreciation: bool = Field(
        default=True,
        description="Charge each gateway's depreciation for the year to its co-funders.",
    )

    @field_validator("costs")
    @classmethod
    def _unique(cls, costs: list[Cost]) -> list[Cost]:
        names = [c.name for c in costs]
        if len(set(names)) != len(names):
            raise ValueError("a cost name is used twice in the year")
        return costs


class CostModel(_Strict):
    version: Literal["v1"]
    kind: Literal["cost-model"]
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    members: list[str] = Field(min_length=1, description="The members sharing the costs.")
    years: dict[int, CostYear] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _weights_of_members(self) -> CostModel:
        for year, spec in self.years.items():
            for cost in spec.costs:
                strangers = set(cost.weights) - set(self.members)
                if strangers:
                    raise ValueError(f"{year}/{cost.name}: weights of non-members"
                                     f" {sorted(strangers)}")
        return self


class Supplier(_Strict):
    name: str = Field(pattern=NAME)
    label: str = Field(min_length=1)
    bricks: list[Brick] = Field(min_length=1)
    intervention_hours: float = Field(
        default=2.0, gt=0, description="Promised delay from notification to arrival.")
    email: str | None = None
    phone: str | None = None


class Suppliers(_Strict):
    version: Literal["v1"]
    kind: Literal["suppliers"]
    suppliers: list[Supplier] = Field(default_factory=list)

    def get(self, name: str) -> Supplier:
        for s in self.suppliers:
            if s.name == name:
                return s
        raise LookupError(f"unknown supplier '{name}'")


class Network(_Strict):
    """The three files together, checked against each other."""

    gateways: GatewayAssets
    costs: CostModel
    suppliers: Suppliers


def _describe(exc: ValidationError) -> str:
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
    )


def _load(path: Path, model: type[_Strict]) -> _Strict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NetworkSpecError(f"{path}: missing") from None
    except yaml.YAMLError as exc:
        raise NetworkSpecError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise NetworkSpecError(f"{path}: invalid\n{_describe(exc)}") from exc


def load(folder: Path) -> Network:
    """Read and cross-check gateways.yaml, costs.yaml and suppliers.yaml of `folder`."""
    gateways = _load(folder / "gateways.yaml", GatewayAssets)
    costs = _load(folder / "costs.yaml", CostModel)
    suppliers = _load(folder / "suppliers.yaml", Suppliers)
    assert isinstance(gateways, GatewayAssets) and isinstance(costs, CostModel)
    assert isinstance(suppliers, Suppliers)
    known = {s.name for s in suppliers.suppliers}
    for g in gateways.gateways:
        if g.supplier not in known:
            raise NetworkSpecError(f"{folder / 'gateways.yaml'}: gateway {g.gateway_id}:"
                                   f" unknown supplier '{g.supplier}'")
        strangers = {c.member for c in g.cofunders} - set(costs.members)
        if strangers:
            raise NetworkSpecError(f"{folder / 'gateways.yaml'}: gateway {g.gateway_id}:"
                                   f" co-funders {sorted(strangers)} are not among the"
                                   " members of costs.yaml")
    return Network(gateways=gateways, costs=costs, suppliers=suppliers)
