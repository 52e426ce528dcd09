"""Benchmark fleets, declared as tenant specs like any member (hypervision.tenancy.spec).

Four demo models stand for a département's sensors: a pulse counter on a water meter,
a fill-level sensor on a drop-off container, a CO2 sensor in a classroom, a controller
in a public lighting cabinet. Each has its usual reporting interval: hourly, every 30
minutes, every 10 minutes, every 20 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypervision.tenancy.spec import TenantSpec


@dataclass(frozen=True)
class Kind:
    category: str
    model: str
    data_class: str
    variables: dict[str, str]
    interval_s: int


WATER = Kind("water", "milesight-em300-di", "water-consumption", {"litres_per_pulse": "10"}, 3600)
WASTE = Kind("waste", "milesight-em400-mud", "waste-fill", {"container_depth_mm": "1500"}, 1800)
AIR = Kind("air", "milesight-am103", "indoor-air", {}, 600)
LIGHTING = Kind("lighting", "milesight-ws558", "lighting", {}, 1200)
KINDS = {k.category: k for k in (WATER, WASTE, AIR, LIGHTING)}


def dev_eui(code: int, member: int, index: int) -> str:
    """16 hex digits: a one-byte fleet code, the member and the device index."""
    return f"{code:02x}{member:02x}{index:012x}"


def fleet(prefix: str, code: int, members: int, mix: dict[str, int]) -> list[TenantSpec]:
    """`members` members named <prefix>1..N, each with mix[category] devices of each kind.

    Air sensors sit 10 to a school building, one per room, so that per-room queries have
    rooms to group by.
    """
    specs = []
    for m in range(members):
        devices = []
        index = 0
        for category, count in mix.items():
            kind = KINDS[category]
            for i in range(count):
                location = {"lat": 48.0 + (index % 1000) / 10000, "lon": -4.1 + m / 100}
                if kind is AIR:
                    location.update(building=f"École {i // 10 + 1}", room=f"Salle {i % 10 + 1}")
                else:
                    location["address"] = f"{index + 1} rue du Banc d'Essai"
                devices.append({
                    "dev_eui": dev_eui(code, m + 1, index),
                    "name": f"{category} {m + 1}-{i + 1}",
                    "model": kind.model,
                    "data_class": kind.data_class,
                    "variables": kind.variables,
                    "location": location,
                })
                index += 1
        specs.append(TenantSpec.model_validate({
            "version": "v1", "kind": "tenant", "name": f"{prefix}{m + 1}",
            "identity": {"name": f"Membre de banc d'essai {m + 1}", "kind": "commune"},
            "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
            "devices": devices,
        }))
    return specs


def kind_of(spec_device_model: str) -> Kind:
    for kind in KINDS.values():
        if kind.model == spec_device_model:
            return kind
    raise KeyError(spec_device_model)
