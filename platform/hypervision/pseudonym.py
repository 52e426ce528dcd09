"""Keyed pseudonyms for exports to third parties (GDPR art. 4(5), "pseudonymisation").

A household's water consumption is personal data: a member exporting to a recipient
marked `third_party: true` in its YAML (`export_recipients`) must not hand over meter
identifiers. The `Pseudonymiser` replaces every identifier that leads to a device, hence
to a household (DevEUI, device name, DevAddr, deduplication ids, gateway ids), with a
keyed pseudonym; it can coarsen timestamps and drops the fields marked personal.

- Pseudonym = HMAC-SHA256(member secret, kind + identifier), cut to the identifier's own
  shape (16 hex digits for a DevEUI or gateway id, 8 for a DevAddr, a UUID for a
  deduplication id) so the recipient's tools keep working. The member secret is derived
  from HV_SECRET_KEY and the member's slug (like the database roles' passwords): stable
  across exports, different for every member, and not reversible without the key.
- Coarsening truncates every timestamp to the hour or the day (UTC).
- Personal fields (`PERSONAL_FIELDS`) are dropped: locations always, for third parties;
  the raw event beyond its skeleton (payload bytes, decoded object, radio metadata) for
  devices of a personal data class such as `water-consumption`; and whatever the
  recipient or the caller adds.

Raw ChirpStack events are rebuilt from an allow-list (`uplink_event`): a field ChirpStack
adds one day is left out until someone decides it is safe, rather than leaked.
See platform/hypervision/export/README.md, "Pseudonymised exports".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from hypervision.settings import Settings
from hypervision.tenancy.spec import Recipient


class _Device(Protocol):
    @property
    def dev_eui(self) -> str: ...
    @property
    def data_class(self) -> str: ...


class MemberDevices(Protocol):
    """What a pseudonymiser needs of a member: its name and its devices' data classes (a
    TenantSpec, or the API's view of the catalogue)."""

    @property
    def name(self) -> str: ...
    @property
    def devices(self) -> Iterable[_Device]: ...

Coarsen = Literal["hour", "day"]
COARSENINGS: tuple[str, ...] = ("hour", "day")

# What a recipient can have dropped. `event` stands for everything of a raw uplink beyond
# its pseudonymised skeleton (ids, time, frame counter and port).
PERSONAL_FIELDS = frozenset({"location", "data", "object", "radio", "event"})
_EXPANDS: dict[str, frozenset[str]] = {"event": frozenset({"data", "object", "radio", "location"})}
# Dropped for every third party.
THIRD_PARTY_DROP = frozenset({"location"})
# Dropped for the devices of these data classes: a meter's payload, decoded object and
# radio metadata (RSSI per gateway locates it) describe one household.
PERSONAL_CLASSES: dict[str, frozenset[str]] = {"water-consumption": frozenset({"event"})}


def member_secret(settings: Settings, slug: str) -> bytes:
    """The member's pseudonymisation key, derived from HV_SECRET_KEY: nothing to store,
    and rotating the key changes every pseudonym (recipients then see new identifiers)."""
    return hmac.new(settings.key(), f"pseudonym:{slug}".encode(), hashlib.sha256).digest()


def _expand(fields: Iterable[str]) -> frozenset[str]:
    result: set[str] = set()
    for name in fields:
        if name not in PERSONAL_FIELDS:
            raise ValueError(
                f"unknown personal field {name!r}; expected one of {sorted(PERSONAL_FIELDS)}"
            )
        result.add(name)
        result |= _EXPANDS.get(name, frozenset())
    return frozenset(result)


class Pseudonymiser:
    """Replaces identifiers with keyed pseudonyms, coarsens times, drops personal fields.

    `drop` applies to every device; `device_drop` adds fields per DevEUI (see
    `for_recipient`, which fills it from each device's data class).
    """

    def __init__(
        self,
        member_secret: bytes,
        coarsen: str | None = None,
        drop: Iterable[str] = (),
        device_drop: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if len(member_secret) < 16:
            raise ValueError("the member secret must be at least 16 bytes")
        if coarsen is not None and coarsen not in COARSENINGS:
            raise ValueError(f"coarsen must be one of {COARSENINGS} or None, not {coarsen!r}")
        self._secret = bytes(member_secret)
        self.coarsen = coarsen
        self.drop = _expand(drop)
        self._device_drop = {
            dev_eui.lower(): _expand(fields) | self.drop
            for dev_eui, fields in (device_drop or {}).items()
        }
        # Identifiers repeat (a few thousand devices and gateways): remember them.
        self._cached = lru_cache(maxsize=65536)(self._pseudonym)

    @classmethod
    def for_recipient(
        cls,
        settings: Settings,
        spec: MemberDevices,
        recipient: Recipient,
        *,
        coarsen: str | None = None,
        drop: Iterable[str] = (),
    ) -> Pseudonymiser | None:
        """The pseudonymiser for an export to one of the member's declared recipients, or
        None when the recipient is not a third party. `coarsen` (per call) overrides the
        recipient's own setting; `drop` adds to it."""
        if not recipient.third_party:
            return None
        # Per-recipient settings, once tenancy/spec.py declares them on Recipient.
        own_coarsen = getattr(recipient, "coarsen", None)
        own_drop = getattr(recipient, "drop", None) or ()
        device_drop = {
            d.dev_eui: PERSONAL_CLASSES[d.data_class]
            for d in spec.devices if d.data_class in PERSONAL_CLASSES
        }
        return cls(
            member_secret(settings, spec.name),
            coarsen=coarsen or own_coarsen,
            drop={*THIRD_PARTY_DROP, *own_drop, *drop},
            device_drop=device_drop,
        )

    # Identifiers ---------------------------------------------------------------------

    def _pseudonym(self, kind: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def dev_eui(self, dev_eui: str) -> str:
        return self._cached("dev_eui", dev_eui.lower()).hex()[:16]

    def device_name(self, dev_eui: str) -> str:
        """A device's name can hold an address: it becomes a name made of its pseudonym."""
        return f"device-{self.dev_eui(dev_eui)}"

    def gateway_id(self, gateway_id: str) -> str:
        return self._cached("gateway_id", gateway_id.lower()).hex()[:16]

    def dev_addr(self, dev_addr: str) -> str:
        return self._cached("dev_addr", dev_addr.lower()).hex()[:8]

    def deduplication_id(self, value: Any) -> str:
        """A UUID (version 8, "custom"): unique per uplink, so not cached."""
        raw = bytearray(self._pseudonym("deduplication_id", str(value).lower())[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80
        raw[8] = (raw[8] & 0x3F) | 0x80
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # Times and fields ----------------------------------------------------------------

    def time(self, value: datetime) -> datetime:
        if self.coarsen is None:
            return value
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        if self.coarsen == "hour":
            return value.replace(minute=0, second=0, microsecond=0)
        return value.replace(hour=0, minute=0, second=0, microsecond=0)

    def dropped(self, dev_eui: str) -> frozenset[str]:
        """The personal fields dropped for this device."""
        return self._device_drop.get(dev_eui.lower(), self.drop)

    def uplink_event(self, event: Mapping[str, Any], format_time: Any = None) -> dict[str, Any]:
        """A ChirpStack uplink event rebuilt from an allow-list, with pseudonyms.

        `format_time` turns the (coarsened) datetime back into text; ISO 8601 UTC if None.
        """
        info = event.get("deviceInfo") or {}
        dev_eui = str(info.get("devEui", ""))
        gone = self.dropped(dev_eui)
        out: dict[str, Any] = {}
        if "deduplicationId" in event:
            out["deduplicationId"] = self.deduplication_id(event["deduplicationId"])
        if "time" in event:
            when = self.time(datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")))
            out["time"] = format_time(when) if format_time else when.isoformat()
        out["deviceInfo"] = {
            key: info[key]
            for key in ("tenantName", "applicationName", "deviceProfileName",
                        "deviceClassEnabled")
            if key in info
        }
        if dev_eui:
            out["deviceInfo"]["devEui"] = self.dev_eui(dev_eui)
            out["deviceInfo"]["deviceName"] = self.device_name(dev_eui)
        if event.get("devAddr"):
            out["devAddr"] = self.dev_addr(str(event["devAddr"]))
        for key in ("adr", "fCnt", "fPort", "confirmed", "regionConfigId"):
            if key in event:
                out[key] = event[key]
        if "data" not in gone and "data" in event:
            out["data"] = event["data"]
        if "object" not in gone and "object" in event:
            out["object"] = event["object"]
        if "radio" not in gone:
            if "dr" in event:
                out["dr"] = event["dr"]
            out["rxInfo"] = [self._rx(rx, gone) for rx in event.get("rxInfo") or []]
            if "txInfo" in event:
                out["txInfo"] = event["txInfo"]
        return out

    def _rx(self, rx: Mapping[str, Any], gone: frozenset[str]) -> dict[str, Any]:
        """One gateway's reception: pseudonymised gateway, signal; never its precise
        times, context or metadata (which can name the gateway's site)."""
        out: dict[str, Any] = {}
        if rx.get("gatewayId"):
            out["gatewayId"] = self.gateway_id(str(rx["gatewayId"]))
        for key in ("rssi", "snr", "channel", "rfChain", "crcStatus"):
            if key in rx:
                out[key] = rx[key]
        if "location" not in gone and "location" in rx:
            out["location"] = rx["location"]
        return out
