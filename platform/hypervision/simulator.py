"""A device simulator standing in for ChirpStack: it produces the events ChirpStack v4's MQTT
integration would publish for a member's devices, with real payload bytes.

Each simulated device follows its model's physics (a water meter's index only grows, with
a steady night flow on a leaking one; a container fills up and is emptied; CO2 rises when
a room is occupied), encodes its reading with the model's own encoder (the inverse of the
built-in decoder, so the bytes are those the real device sends), and is wrapped as a
`chirpstack_api.integration.UplinkEvent` serialised like ChirpStack does: camelCase,
base64 `data`, every scalar present, `+00:00` timestamps, `object` as ChirpStack's codec
would have decoded it (numbers as doubles). Some status and join events are mixed in.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chirpstack_api import common, gw, integration
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue

APPLICATION_IDS: dict[str, str] = {}
GATEWAYS = ["0016c001f153a14c", "0016c001f153a14d", "7276ff0039030a2b"]


def application_id(member: str) -> str:
    """A stable ChirpStack application id per member (ChirpStack uses lower-case UUIDs)."""
    return APPLICATION_IDS.setdefault(member, str(uuid.uuid5(uuid.NAMESPACE_URL, f"hv:{member}")))


def chirpstack_time(value: datetime) -> str:
    """ChirpStack (pbjson) writes `+00:00` rather than `Z`, with 0/3/6/9 fraction digits."""
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "") + "000+00:00"


def to_struct_numbers(value: Any) -> Any:
    """Codec output as ChirpStack's protobuf Struct carries it: every number a double."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: to_struct_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_struct_numbers(v) for v in value]
    return value


@dataclass
class SimDevice:
    member: str
    member_name: str
    dev_eui: str
    name: str
    model_id: str
    variables: dict[str, str]
    f_cnt: int = 0
    state: dict[str, float] = field(default_factory=dict)


class Simulator:
    """Generates (topic, payload) pairs for a fleet of declared devices."""

    def __init__(self, specs: list[TenantSpec], catalogue: Catalogue, seed: int = 1) -> None:
        self.catalogue = catalogue
        self.random = random.Random(seed)
        self.devices = [
            SimDevice(s.name, s.identity.name, d.dev_eui, d.name, d.model, dict(d.variables))
            for s in specs for d in s.devices
            if self._codec(d.model) is not None
        ]
        if not self.devices:
            raise ValueError("no simulated device: declare devices of a model with an encoder")

    def _codec(self, model_id: str) -> Any:
        model = self.catalogue.models.get(model_id)
        if model is None or model.codec is None or model.codec.builtin is None:
            return None
        module = importlib.import_module(f"ingest.decode.codecs.{model.codec.builtin}")
        return module if hasattr(module, "encode") else None

    # Physics ----------------------------------------------------------------------------

    def _values(self, device: SimDevice, now: datetime) -> dict[str, Any]:
        rnd, st = self.random, device.state
        category = self.catalogue.get(device.model_id).category
        battery = st.setdefault("battery", rnd.randint(70, 100))
        if rnd.random() < 0.01:
            st["battery"] = battery = max(1, battery - 1)
        hour = now.hour + now.minute / 60
        if category == "water":
            # Pulses accumulate; the first device of each member leaks (a night flow).
            pulses = st.setdefault("pulse", rnd.randint(1000, 90000))
            leak = device.dev_eui.endswith("1")
            flow = rnd.choice([0, 0, 1, 2, 5]) if 6 <= hour < 23 else (1 if leak else 0)
            st["pulse"] = pulses + flow
            return {"battery": battery, "pulse": int(st["pulse"])}
        if category == "waste":
            depth = float(device.variables.get("container_depth_mm", "1500"))
            distance = st.setdefault("distance", depth - rnd.randint(0, 300))
            distance -= rnd.uniform(0, 25)
            if distance < depth * 0.1:  # collected
                distance = depth - rnd.uniform(0, 50)
            st["distance"] = distance
            return {"battery": battery, "temperature": round(rnd.uniform(4, 28), 1),
                    "distance": int(distance)}
        if category == "air":
            occupied = 8 <= hour < 17
            co2 = st.setdefault("co2", 450.0)
            target = 1400.0 if occupied else 420.0
            co2 += (target - co2) * 0.2 + rnd.uniform(-30, 30)
            st["co2"] = max(400.0, co2)
            return {"battery": battery, "temperature": round(19 + 2 * math.sin(hour / 4), 1),
                    "humidity": round(rnd.uniform(35, 60) * 2) / 2, "co2": int(st["co2"])}
        raise ValueError(f"no simulation for category {category!r}")

    # ChirpStack events ---------------------------------------------------------------

    def _device_info(self, device: SimDevice) -> integration.DeviceInfo:
        model = self.catalogue.get(device.model_id)
        return integration.DeviceInfo(
            tenant_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "hv:syndicate")),
            tenant_name="Syndicat",
            application_id=application_id(device.member),
            application_name=device.member_name,
            device_profile_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"hv:{model.id}")),
            device_profile_name=f"{model.vendor} {model.model}",
            device_name=device.name,
            dev_eui=device.dev_eui,
            device_class_enabled=common.DeviceClass.CLASS_A,
        )

    def uplink(self, device: SimDevice, now: datetime | None = None) -> tuple[str, bytes]:
        now = now or datetime.now(UTC)
        codec = self._codec(device.model_id)
        f_port, data = codec.encode(self._values(device, now))
        decoded = to_struct_numbers(codec.decode(f_port, data))
        device.f_cnt += 1
        rx = []
        for i, gateway in enumerate(self.random.sample(GATEWAYS, self.random.randint(1, 2))):
            rx.append(gw.UplinkRxInfo(
                gateway_id=gateway, uplink_id=self.random.getrandbits(32),
                rssi=self.random.randint(-120, -40), snr=round(self.random.uniform(-15, 12), 1),
                channel=self.random.randint(0, 7), rf_chain=i % 2,
                context=self.random.randbytes(4), crc_status=gw.CRCStatus.CRC_OK,
                metadata={"region_config_id": "eu868", "region_common_name": "EU868"},
            ))
        sf = self.random.choice([7, 8, 9, 10, 11, 12])
        event = integration.UplinkEvent(
            deduplication_id=str(uuid.UUID(int=self.random.getrandbits(128), version=4)),
            device_info=self._device_info(device),
            dev_addr=f"{self.random.getrandbits(32):08x}",
            adr=True, dr=12 - sf, f_cnt=device.f_cnt, f_port=f_port, confirmed=False,
            data=data, rx_info=rx,
            tx_info=gw.UplinkTxInfo(
                frequency=self.random.choice([868100000, 868300000, 868500000]),
                modulation=gw.Modulation(lora=gw.LoraModulationInfo(
                    bandwidth=125000, spreading_factor=sf, code_rate=gw.CodeRate.CR_4_5)),
            ),
            region_config_id="eu868",
        )
        obj = Struct()
        obj.update(decoded)
        event.object.CopyFrom(obj)
        return self._serialise(device, "up", event, now, ns_times=True)

    def status(self, device: SimDevice, now: datetime | None = None) -> tuple[str, bytes]:
        now = now or datetime.now(UTC)
        battery = device.state.get("battery", 90)
        event = integration.StatusEvent(
            deduplication_id=str(uuid.uuid4()), device_info=self._device_info(device),
            margin=self.random.randint(0, 20), external_power_source=False,
            battery_level_unavailable=False, battery_level=float(battery),
        )
        return self._serialise(device, "status", event, now)

    def join(self, device: SimDevice, now: datetime | None = None) -> tuple[str, bytes]:
        now = now or datetime.now(UTC)
        device.f_cnt = 0
        event = integration.JoinEvent(
            deduplication_id=str(uuid.uuid4()), device_info=self._device_info(device),
            dev_addr=f"{self.random.getrandbits(32):08x}", region_config_id="eu868",
        )
        return self._serialise(device, "join", event, now)

    def _serialise(self, device: SimDevice, kind: str, event: Any, now: datetime,
                   ns_times: bool = False) -> tuple[str, bytes]:
        # Every scalar of the integration message is written, even at its default; inside
        # rxInfo/txInfo ChirpStack omits zero values.
        body = json_format.MessageToDict(event, always_print_fields_with_no_presence=True)
        if kind == "up":
            body["rxInfo"] = [json_format.MessageToDict(rx) for rx in event.rx_info]
            body["txInfo"] = json_format.MessageToDict(event.tx_info)
        body["time"] = chirpstack_time(now)
        if ns_times:
            for rx in body.get("rxInfo", []):
                rx["nsTime"] = chirpstack_time(now)
        topic = f"application/{application_id(device.member)}/device/{device.dev_eui}/event/{kind}"
        return topic, json.dumps(body).encode()

    def stream(
        self, total: int | None = None, status_every: int = 20
    ) -> Iterator[tuple[str, bytes]]:
        """Round-robin over the fleet: uplinks, a status now and then, one join per device
        at the start."""
        for device in self.devices:
            yield self.join(device)
        count = 0
        while total is None or count < total:
            device = self.devices[count % len(self.devices)]
            yield self.uplink(device)
            count += 1
            if count % status_every == 0:
                yield self.status(device)
