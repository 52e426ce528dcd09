"""A device simulator standing in for ChirpStack: it produces the events ChirpStack v4's MQTT
integration would publish for a member's devices, with real payload bytes.

Each simulated device follows its model's physics, stepped by the time elapsed since its
previous reading, so that a month of history and the live stream tell one story:

- water meters count pulses along a household's daily curve (morning and evening peaks,
  quiet nights, later and bigger on weekends);
- containers fill at a rate of their own, faster after weekends, and are emptied by the
  member's collection rounds (`analytics.waste.round_days`) once they are over half full;
- classrooms' CO2 rises while the building's calendar says it is occupied
  (`analytics.air`), and falls back to the outside level when it empties;
- public lighting cabinets are on from dusk to 23:00 and from 06:00 to dawn (night-time
  switch-off), metering their power and energy.

Each member also gets the incidents a platform is there to catch (`ROLES`): its first
water meter leaks at night, its second runs backwards once (a reverse flow), goes
unheard for a few hours and has a day of unusual consumption, its last indoor-air sensor
has gone silent, its first container's battery runs down and its last one has been
passed by the rounds for a week (it is full), its last lighting cabinet's clock keeps the
lamps on well after dawn.

A reading is encoded with the model's own encoder (the inverse of the built-in decoder,
so the bytes are those the real device sends), and wrapped as a
`chirpstack_api.integration.UplinkEvent` serialised like ChirpStack does: camelCase,
base64 `data`, every scalar present, `+00:00` timestamps, `object` as ChirpStack's codec
would have decoded it (numbers as doubles). Status events (battery) and joins are mixed in.
`history(start, end)` gives the events of a past period in time order, `stream()` the
live ones.
"""

from __future__ import annotations

import base64
import heapq
import importlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chirpstack_api import common, integration
from google.protobuf import json_format

from hypervision.analytics.config import WEEKDAYS, AnalyticsSettings, Calendar
from hypervision.tenancy.spec import TenantSpec
from ingest.decode import Catalogue

APPLICATION_IDS: dict[str, str] = {}
GATEWAYS = ["0016c001f153a14c", "0016c001f153a14d", "7276ff0039030a2b"]

# The incidents of each member, by role: (category, which device of that category in the
# member's file: 0 the first, -1 the last, ...). A member with fewer devices of a category
# than the role needs (two air sensors for a silent one) has no such incident.
ROLES = {
    "leak": ("water", 0),
    "backflow": ("water", 1),
    "gap": ("water", 1),
    "abnormal": ("water", 1),
    "silent": ("air", -1),
    "battery": ("waste", 0),
    "missed": ("waste", -1),
    "daylight": ("lighting", -1),
}
# When the incidents happen, before the end of the history (the start of the live stream).
LEAK_SINCE = timedelta(days=9)
BACKFLOW_BEFORE = timedelta(days=4, hours=21)
SILENT_SINCE = timedelta(hours=30)
# A meter unheard for some hours (a gateway down), and a lighting clock left on after dawn.
GAP_BEFORE, GAP_HOURS = timedelta(days=2, hours=14), 5
DAYLIGHT_SINCE, DAYLIGHT_AFTER_DAWN = timedelta(days=10), timedelta(minutes=100)
# A day of unusual consumption (a garden watered all day), this many days before the end.
ABNORMAL_BEFORE, ABNORMAL_FACTOR = 2, 4.0
# A container the rounds have passed by (road works): never emptied for these last days.
MISSED_SINCE = timedelta(days=8)
# The running-down battery is at this level at the end of the history, and loses this
# much a day.
BATTERY_END, BATTERY_PER_DAY = 9.0, 0.95
# Status events (battery level) per device and day.
STATUS_EVERY = timedelta(days=1)


def application_id(member: str) -> str:
    """A stable ChirpStack application id per member (ChirpStack uses lower-case UUIDs)."""
    found = APPLICATION_IDS.get(member)
    if found is None:
        found = APPLICATION_IDS[member] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hv:{member}"))
    return found


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
    category: str = ""
    interval_s: int = 600
    building: str | None = None
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    roles: set[str] = field(default_factory=set)  # the member's incidents it shows (ROLES)
    last: datetime | None = None  # time of the previous reading: physics steps from there
    scale: float = 1.0  # how big a consumer, how fast a container fills, how full a room


class _Occupancy:
    """Whether a building's calendar says it is occupied at an instant (spans cached per
    local day: the history asks for every reading of every sensor)."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.zone = ZoneInfo(calendar.timezone)
        self.days: dict[date, list[tuple[datetime, datetime]]] = {}

    def __call__(self, at: datetime) -> bool:
        day = at.astimezone(self.zone).date()
        spans = self.days.get(day)
        if spans is None:
            start = datetime.combine(day, time(0), self.zone)
            spans = self.days[day] = self.calendar.occupied(start, start + timedelta(days=1))
        return any(a <= at < b for a, b in spans)


def _hours_local(at: datetime, zone: ZoneInfo) -> tuple[float, int]:
    """Local hour of the day (with minutes as a fraction) and weekday (0 = Monday)."""
    local = at.astimezone(zone)
    return local.hour + local.minute / 60, local.weekday()


# A household's water use, litres per hour at each local hour, weekdays and weekends.
WEEKDAY_LPH = [0, 0, 0, 0, 0, 2, 18, 42, 30, 12, 9, 10, 16, 12, 8, 8, 10, 14, 24, 36, 34,
               22, 10, 3]
WEEKEND_LPH = [1, 0, 0, 0, 0, 0, 3, 10, 26, 38, 30, 20, 22, 16, 10, 10, 12, 16, 24, 32, 30,
               24, 14, 5]


def sun_times(day: date, lon: float = -4.1) -> tuple[datetime, datetime]:
    """Sunrise and sunset (UTC) in Brittany, near enough for street lights: a day length
    of 12 h ± 4 h 10 over the year, around the solar noon of longitude `lon`."""
    length = 12 + 4.17 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 80) / 365)
    noon = datetime.combine(day, time(12), UTC) - timedelta(hours=lon / 15)
    half = timedelta(hours=length / 2)
    return noon - half, noon + half


class Simulator:
    """Generates (topic, payload) pairs for a fleet of declared devices."""

    def __init__(self, specs: list[TenantSpec], catalogue: Catalogue, seed: int = 1,
                 end: datetime | None = None) -> None:
        self.catalogue = catalogue
        self.random = random.Random(seed)
        # The end of the history (the start of the live stream): incidents are dated from it.
        self.end = end or datetime.now(UTC)
        self.devices: list[SimDevice] = []
        for s in specs:
            member_devices = []
            for d in s.devices:
                if self._codec(d.model) is None:
                    continue
                model = catalogue.get(d.model)
                member_devices.append(SimDevice(
                    s.name, s.identity.name, d.dev_eui, d.name, d.model, dict(d.variables),
                    category=model.category, interval_s=model.typical_interval_s,
                    building=d.location.building if d.location else None,
                    analytics=s.analytics, scale=self.random.uniform(0.6, 1.6),
                ))
            for role, (category, index) in ROLES.items():
                of_category = [d for d in member_devices if d.category == category]
                needed = index + 1 if index >= 0 else -index + 1
                if len(of_category) >= needed:
                    of_category[index].roles.add(role)
            self.devices.extend(member_devices)
        if not self.devices:
            raise ValueError("no simulated device: declare devices of a model with an encoder")
        self._occupancy: dict[tuple[str, str | None], _Occupancy] = {}
        self._info_json: dict[str, dict[str, Any]] = {}

    def _codec(self, model_id: str) -> Any:
        model = self.catalogue.models.get(model_id)
        if model is None or model.codec is None or model.codec.builtin is None:
            return None
        module = importlib.import_module(f"ingest.decode.codecs.{model.codec.builtin}")
        return module if hasattr(module, "encode") else None

    def silent_since(self, device: SimDevice) -> datetime | None:
        """When the member's silent device sent its last uplink (None: it never goes silent)."""
        return self.end - SILENT_SINCE if "silent" in device.roles else None

    def unheard(self, device: SimDevice, at: datetime) -> bool:
        """Whether the device's uplink at `at` is lost (its gap, ROLES["gap"])."""
        if "gap" not in device.roles:
            return False
        start = self.end - GAP_BEFORE
        return start <= at < start + timedelta(hours=GAP_HOURS)

    def carry_on(self, device: SimDevice, last: dict[str, float]) -> None:
        """Start `device` from the last values a previous run stored (metric -> value), so
        that indexes keep growing and containers keep their level across runs."""
        st = device.state
        if "battery.level" in last and "battery" not in device.roles:
            st["battery"] = last["battery.level"]
        if device.category == "water" and "water.index" in last:
            st["pulse"] = last["water.index"] / float(device.variables.get("litres_per_pulse", "1"))
            st["backflow_done"] = 1  # one reverse flow per meter is enough
        elif device.category == "waste" and "fill.distance" in last:
            depth = float(device.variables.get("container_depth_mm", "1500"))
            st["level"] = min(1.0, max(0.0, 1 - last["fill.distance"] / depth))
        elif device.category == "air":
            st.update({k: last[m] for k, m in (("co2", "air.co2"),
                                               ("temperature", "air.temperature")) if m in last})
        elif device.category == "lighting" and "energy.active" in last:
            st["energy_wh"] = last["energy.active"]

    # Physics ----------------------------------------------------------------------------

    def _battery(self, device: SimDevice, now: datetime, elapsed_days: float) -> int:
        if "battery" in device.roles:
            days_left = (self.end - now).total_seconds() / 86400
            device.state["battery"] = max(1.0, BATTERY_END + BATTERY_PER_DAY * days_left)
        elif "battery" not in device.state:
            device.state["battery"] = float(self.random.randint(70, 100))
        else:
            # About a point a month, as a battery meant to last years loses it.
            device.state["battery"] = max(1.0, device.state["battery"] - elapsed_days / 30)
        return int(device.state["battery"])

    def _values(self, device: SimDevice, now: datetime) -> dict[str, Any]:
        rnd = self.random
        elapsed = 0.0 if device.last is None else max(0.0, (now - device.last).total_seconds())
        device.last = now
        battery = self._battery(device, now, elapsed / 86400)
        zone = device.analytics.zone
        hour, weekday = _hours_local(now, zone)
        if device.category == "water":
            return {"battery": battery, "pulse": self._water(device, now, elapsed, hour, weekday)}
        if device.category == "waste":
            depth = float(device.variables.get("container_depth_mm", "1500"))
            level = self._waste(device, now, elapsed, hour, weekday)
            return {"battery": battery,
                    "temperature": round(11 + 5 * math.sin((hour - 9) / 24 * 2 * math.pi)
                                         + rnd.uniform(-1, 1), 1),
                    "distance": int(max(30.0, depth * (1 - level)))}
        if device.category == "air":
            return {"battery": battery, **self._air(device, now, elapsed)}
        if device.category == "lighting":
            return self._lighting(device, now, elapsed)
        raise ValueError(f"no simulation for category {device.category!r}")

    def _water(self, device: SimDevice, now: datetime, elapsed: float, hour: float,
               weekday: int) -> int:
        """Pulses of the meter's output: litres used since the previous reading, on the
        hour's household curve, divided by the litres per pulse."""
        st = device.state
        per_pulse = float(device.variables.get("litres_per_pulse", "1"))
        pulses = st.setdefault("pulse", float(self.random.randint(1000, 90000)))
        curve = WEEKEND_LPH if weekday >= 5 else WEEKDAY_LPH
        litres = curve[int(hour)] * device.scale * self.random.uniform(0.5, 1.5) * elapsed / 3600
        if "abnormal" in device.roles and 8 <= hour < 20 and now.astimezone(
                device.analytics.zone).date() == self.end.astimezone(
                device.analytics.zone).date() - timedelta(days=ABNORMAL_BEFORE):
            litres *= ABNORMAL_FACTOR
        if "leak" in device.roles and now >= self.end - LEAK_SINCE:
            litres += 25.0 * elapsed / 3600  # a dripping pipe, day and night
        pulses += litres / per_pulse
        if "backflow" in device.roles and "backflow_done" not in st \
                and now >= self.end - BACKFLOW_BEFORE:
            # A reverse flow: the meter turns backwards by 60 litres once.
            pulses -= 60 / per_pulse
            st["backflow_done"] = 1
        st["pulse"] = pulses
        return int(pulses)

    def _waste(self, device: SimDevice, now: datetime, elapsed: float, hour: float,
               weekday: int) -> float:
        """Fill level (0-1): glass brought in during the day, more on weekends; emptied by a
        collection round on the member's round days, in the morning, if over half full."""
        st = device.state
        level = st.setdefault("level", self.random.uniform(0.05, 0.6))
        if 8 <= hour < 21:
            scale = max(device.scale, 1.3) if "missed" in device.roles else device.scale
            per_day = 0.09 * scale * (1.6 if weekday >= 5 else 1.0)
            level += per_day / 13 * elapsed / 3600 * self.random.uniform(0.3, 1.7)
        round_day = WEEKDAYS[weekday] in device.analytics.waste.round_days
        round_hour = 9 + (int(device.dev_eui[-2:], 16) % 4) / 2  # the truck's order
        day = now.astimezone(device.analytics.zone).date().toordinal()
        if round_day and hour >= round_hour and st.get("round") != day:
            st["round"] = day
            missed = "missed" in device.roles and now >= self.end - MISSED_SINCE
            if level > 0.5 and not missed:
                level = self.random.uniform(0.0, 0.04)
        level = min(1.0, level)
        st["level"] = level
        return level

    def _air(self, device: SimDevice, now: datetime, elapsed: float) -> dict[str, Any]:
        """CO2 relaxes towards the outside level, or towards a classroom's level while the
        building is occupied; the room warms up with the heating schedule and the pupils."""
        st, rnd = device.state, self.random
        key = (device.member, device.building)
        if key not in self._occupancy:
            self._occupancy[key] = _Occupancy(device.analytics.air.calendar_of(device.building))
        occupied = self._occupancy[key](now)
        co2 = st.setdefault("co2", 450.0)
        temperature = st.setdefault("temperature", 18.0)
        if occupied:
            target, tau = 800 + 900 * device.scale, 1800.0
        else:
            target, tau = 420.0, 2400.0
        co2 += (target - co2) * (1 - math.exp(-elapsed / tau)) + rnd.uniform(-25, 25)
        hour, weekday = _hours_local(now, device.analytics.zone)
        heated = weekday < 5 and 6.5 <= hour < 18
        goal = (20.5 if heated else 16.5) + (1.2 if occupied else 0.0)
        temperature += (goal - temperature) * (1 - math.exp(-elapsed / 5400))
        st["co2"], st["temperature"] = max(400.0, co2), temperature
        humidity = 42 + (8 if occupied else 0) + rnd.uniform(-3, 3)
        return {"temperature": round(temperature + rnd.uniform(-0.2, 0.2), 1),
                "humidity": round(humidity * 2) / 2, "co2": int(st["co2"])}

    def _lighting(self, device: SimDevice, now: datetime, elapsed: float) -> dict[str, Any]:
        """A street lighting cabinet: lamps on from dusk to 23:00 and from 06:00 to dawn."""
        st, rnd = device.state, self.random
        sunrise, sunset = sun_times(now.date())
        hour, _ = _hours_local(now, device.analytics.zone)
        if "daylight" in device.roles and now >= self.end - DAYLIGHT_SINCE:
            sunrise += DAYLIGHT_AFTER_DAWN  # its clock switches off well after dawn
        dark = now < sunrise or now >= sunset
        on = dark and not (hour >= 23 or hour < 6)
        installed = st.setdefault("installed_w", round(1500 + 2000 * (device.scale - 0.6)))
        power = installed * rnd.uniform(0.97, 1.03) if on else rnd.uniform(8, 14)
        energy = st.setdefault("energy_wh", float(rnd.randint(100_000, 2_000_000)))
        st["energy_wh"] = energy + power * elapsed / 3600
        voltage = rnd.uniform(228, 234)
        factor = 96 if on else 60
        return {"voltage": round(voltage, 1), "active_power": int(power),
                "power_factor": factor,
                "total_current": int(power / voltage / (factor / 100) * 1000),
                "power_consumption": int(st["energy_wh"]),
                **{f"switch_{n}": "on" if on and n <= 2 else "off" for n in range(1, 9)}}

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
        """An UplinkEvent as ChirpStack's MQTT integration publishes it. The JSON is written
        here field by field, as json_format.MessageToDict writes the message (every scalar
        of the event, only the non-zero ones inside rxInfo and txInfo): a month of history
        is over a hundred thousand events, and the protobuf round trip would take minutes.
        tests/platform/test_simulator.py checks that protobuf reads it back unchanged."""
        now = now or datetime.now(UTC)
        rnd = self.random
        codec = self._codec(device.model_id)
        f_port, data = codec.encode(self._values(device, now))
        device.f_cnt += 1
        at = chirpstack_time(now)
        rx = []
        for i, gateway in enumerate(rnd.sample(GATEWAYS, rnd.randint(1, 2))):
            item: dict[str, Any] = {"gatewayId": gateway, "uplinkId": rnd.getrandbits(32),
                                    "rssi": rnd.randint(-120, -40),
                                    "snr": round(rnd.uniform(-15, 12), 1),
                                    "channel": rnd.randint(0, 7), "rfChain": i % 2,
                                    "context": base64.b64encode(rnd.randbytes(4)).decode(),
                                    "metadata": {"region_config_id": "eu868",
                                                 "region_common_name": "EU868"},
                                    "crcStatus": "CRC_OK", "nsTime": at}
            rx.append({k: v for k, v in item.items() if v != 0})
        sf = rnd.choice([7, 8, 9, 10, 11, 12])
        body = {
            "deduplicationId": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "deviceInfo": self._device_info_json(device),
            "devAddr": f"{rnd.getrandbits(32):08x}",
            "adr": True, "dr": 12 - sf, "fCnt": device.f_cnt, "fPort": f_port,
            "confirmed": False, "data": base64.b64encode(data).decode(),
            "object": to_struct_numbers(codec.decode(f_port, data)),
            "rxInfo": rx,
            "txInfo": {"frequency": rnd.choice([868100000, 868300000, 868500000]),
                       "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": sf,
                                               "codeRate": "CR_4_5"}}},
            "regionConfigId": "eu868",
            "time": at,
        }
        return self._topic(device, "up"), json.dumps(body).encode()

    def _device_info_json(self, device: SimDevice) -> dict[str, Any]:
        """The deviceInfo of the device's events, as ChirpStack writes it (made once)."""
        cached = self._info_json.get(device.dev_eui)
        if cached is None:
            cached = self._info_json[device.dev_eui] = json_format.MessageToDict(
                self._device_info(device), always_print_fields_with_no_presence=True)
        return cached

    def _topic(self, device: SimDevice, kind: str) -> str:
        return f"application/{application_id(device.member)}/device/{device.dev_eui}/event/{kind}"

    def status(self, device: SimDevice, now: datetime | None = None) -> tuple[str, bytes]:
        now = now or datetime.now(UTC)
        battery = device.state.get("battery", 90)
        # A lighting controller is mains powered: ChirpStack reports no battery level.
        mains = device.category == "lighting"
        event = integration.StatusEvent(
            deduplication_id=str(uuid.UUID(int=self.random.getrandbits(128), version=4)),
            device_info=self._device_info(device),
            margin=self.random.randint(0, 20), external_power_source=mains,
            battery_level_unavailable=mains, battery_level=0.0 if mains else float(int(battery)),
        )
        return self._serialise(device, "status", event, now)

    def join(self, device: SimDevice, now: datetime | None = None) -> tuple[str, bytes]:
        now = now or datetime.now(UTC)
        device.f_cnt = 0
        event = integration.JoinEvent(
            deduplication_id=str(uuid.UUID(int=self.random.getrandbits(128), version=4)),
            device_info=self._device_info(device),
            dev_addr=f"{self.random.getrandbits(32):08x}", region_config_id="eu868",
        )
        return self._serialise(device, "join", event, now)

    def _serialise(self, device: SimDevice, kind: str, event: Any,
                   now: datetime) -> tuple[str, bytes]:
        # Every scalar of the integration message is written, even at its default.
        body = json_format.MessageToDict(event, always_print_fields_with_no_presence=True)
        body["time"] = chirpstack_time(now)
        return self._topic(device, kind), json.dumps(body).encode()

    # Histories and the live stream ---------------------------------------------------

    def schedule(self, start: datetime, end: datetime,
                 since: dict[str, datetime] | None = None) -> list[tuple[datetime, int, str]]:
        """The events of [start, end) in time order, as (time, device index, kind): a join
        when a device first appears, an uplink every usual interval of its model (a few
        percent of jitter), a status event a day. `since` holds each device's last reading
        already stored: its history resumes one interval after it, without a join."""
        since = since or {}
        plans = []
        for index, device in enumerate(self.devices):
            interval = timedelta(seconds=device.interval_s)
            stop = min(end, self.silent_since(device) or end)
            last = since.get(device.dev_eui)
            at = max(start + interval * self.random.random(), last + interval if last else start)
            events: list[tuple[datetime, int, str]] = []
            if last is None and at < stop:
                events.append((at - timedelta(seconds=5), index, "join"))
            next_status = at + STATUS_EVERY * self.random.random()
            while at < stop:
                if not self.unheard(device, at):
                    events.append((at, index, "up"))
                if at >= next_status:
                    events.append((at + timedelta(seconds=1), index, "status"))
                    next_status += STATUS_EVERY
                at += interval * self.random.uniform(0.97, 1.03)
            plans.append(events)
        return list(heapq.merge(*plans))

    def events(self, schedule: list[tuple[datetime, int, str]]) -> Iterator[tuple[str, bytes]]:
        """The (topic, payload) pairs of a schedule, made as they are consumed."""
        for at, index, kind in schedule:
            device = self.devices[index]
            if kind == "up":
                yield self.uplink(device, at)
            elif kind == "status":
                yield self.status(device, at)
            else:
                yield self.join(device, at)

    def stream(
        self, total: int | None = None, status_every: int = 20
    ) -> Iterator[tuple[str, bytes]]:
        """The live stream, round-robin over the fleet (a silent device stays silent):
        uplinks, a status now and then, a join per device that has no history."""
        live = [d for d in self.devices if self.silent_since(d) is None]
        for device in live:
            if device.last is None:
                yield self.join(device)
        count = 0
        while total is None or count < total:
            device = live[count % len(live)]
            yield self.uplink(device)
            count += 1
            if count % status_every == 0:
                yield self.status(device)
