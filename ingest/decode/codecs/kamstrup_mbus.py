"""Kamstrup water meters over LoRaWAN (flowIQ 2200 OMS): wireless M-Bus data records.

Frames are EN 13757-3 application layers, as in Kamstrup's integration guide and the
examples Kamstrup publishes in The Things Network device repository
(vendor/kamstrup/mbusparser.yaml):

1. CI field: 0x78 (no header), 0x7A (short header: 4 bytes) or 0x72 (long header: 12).
2. Data records: DIF (data type in bits 3-0, function in bits 5-4: 01 maximum, 10
   minimum; bit 6 storage number), then VIF (bit 7: a VIFE follows), then the value,
   little-endian.
3. Understood records: 0x6D date and time (type F); 0x10-0x17 volume, 10^(n-6) m³;
   0x38-0x3F volume flow, 10^(n-6) m³/h; 0x58-0x5B flow temperature, 10^(n-3) °C;
   manufacturer records (VIF 0xFF) 0x16 module type/config number, 0x25 info codes, 0x1C
   acoustic leak detection of the last day. A 0x2F byte is the idle filler.
4. A compact profile (DIF 0x0D + storage, VIF 0x93 0x13: LVAR length, a header byte with
   the element size in bits 3-0 and the spacing unit in bits 5-4, a spacing value, then
   volume decrements from the base value, newest first) becomes one volume per interval.
   A profile before any base volume is an error, as in Kamstrup's parser.

Values of storage 1 carry the time of the frame's date record, printed without zone as
Kamstrup's parser prints them. An 8-bit temperature of 0x80 is "invalid" (value null).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ingest.decode.errors import DecodeError

_SIZES = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x6: 6, 0x7: 8}
_HEADERS = {0x78: 0, 0x7A: 4, 0x72: 12}
_SPACING = {0: "seconds", 1: "minutes", 2: "hours", 3: "days"}
_INFO_CODES = (
    "Dry", "Reverse", "Leak", "Burst", "Tamper", "Low Battery", "Low Ambient Temperature",
    "High Ambient Temperature",
)  # bits 0-7 of the info code record


def _date(raw: bytes) -> datetime:
    """EN 13757-3 type F: minute, hour, day, month and year packed into 4 bytes."""
    minute, hour, day, month = raw[0] & 0x3F, raw[1] & 0x1F, raw[2] & 0x1F, raw[3] & 0x0F
    year = 2000 + (((raw[2] & 0xE0) >> 5) | ((raw[3] & 0xF0) >> 1))
    try:
        return datetime(year, month, day, hour, minute)
    except ValueError as exc:
        raise DecodeError(f"invalid date record {raw.hex()}") from exc


def _stamp(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.000")


def _scaled(value: int, exponent: int) -> float | int:
    if exponent >= 0:
        return value * int(10**exponent)
    return value / int(10 ** (-exponent))


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Kamstrup's M-Bus parser puts in `data`."""
    if not data or data[0] not in _HEADERS:
        raise DecodeError(f"unknown CI field 0x{data[:1].hex() or '??'}")
    i = 1 + _HEADERS[data[0]]
    values: list[dict[str, Any]] = []
    out: dict[str, Any] = {"values": values}
    when: datetime | None = None
    base: int | None = None  # the latest volume, in units of the base record's VIF
    base_exponent = 0
    while i < len(data):
        dif = data[i]
        if dif == 0x2F:  # idle filler
            i += 1
            continue
        if i + 1 >= len(data):
            raise DecodeError(f"record truncated at byte {i}")
        vifs = [data[i + 1]]
        j = i + 2
        while vifs[-1] & 0x80:
            if j >= len(data):
                raise DecodeError(f"record truncated at byte {i}")
            vifs.append(data[j])
            j += 1
        kind, function = dif & 0x0F, (dif >> 4) & 0x03
        prefix = {1: "Max ", 2: "Min "}.get(function, "")
        if kind == 0x0D:  # variable length: a compact profile
            if j >= len(data):
                raise DecodeError(f"profile truncated at byte {i}")
            length = data[j]
            body = data[j + 1 : j + 1 + length]
            if len(body) != length or length < 2:
                raise DecodeError(f"profile truncated at byte {i}")
            if base is None:
                raise DecodeError(
                    "Invalid uplink payload: Could not find base value for profile data"
                )
            step, unit, spacing = body[0] & 0x0F, _SPACING[(body[0] >> 4) & 0x03], body[1]
            current, at = base, when
            for k in range(2, length - step + 1, step):
                current -= int.from_bytes(body[k : k + step], "little")
                at = None if at is None else at - timedelta(**{unit: spacing})
                values.append({"Type": "Volume", "Value": _scaled(current, base_exponent),
                               "Unit": "m3", "Timestamp": _stamp(at)})
            i = j + 1 + length
            continue
        size = _SIZES.get(kind)
        if size is None or j + size > len(data):
            raise DecodeError(f"unsupported or truncated record 0x{dif:02x} at byte {i}")
        raw = data[j : j + size]
        i = j + size
        number = int.from_bytes(raw, "little", signed=True)
        vif = vifs[0] & 0x7F
        stamp = _stamp(when) if dif & 0x40 else None
        if vif == 0x6D:
            when = _date(raw)
        elif 0x10 <= vif <= 0x17:
            base, base_exponent = int.from_bytes(raw, "little"), (vif & 0x07) - 6
            out["latestVolume"] = _scaled(base, base_exponent)
            values.append({"Type": "Volume", "Value": out["latestVolume"], "Unit": "m3",
                           "Timestamp": stamp})
        elif 0x38 <= vif <= 0x3F:
            values.append({"Type": f"{prefix}Volume flow",
                           "Value": _scaled(number, (vif & 0x07) - 6), "Unit": "m3/h",
                           "Timestamp": stamp})
        elif 0x58 <= vif <= 0x5B:
            valid = not (size == 1 and raw[0] == 0x80)
            values.append({"Type": f"{prefix}Flow temperature",
                           "Value": _scaled(number, (vif & 0x03) - 3) if valid else None,
                           "Unit": "°C" if valid else "Invalid", "Timestamp": stamp})
        elif vifs[0] == 0xFF and len(vifs) > 1 and vifs[1] == 0x16:
            values.append({"Type": "Module type/config number",
                           "Value": int.from_bytes(raw, "little"), "Unit": "NA",
                           "Timestamp": stamp})
        elif vifs[0] == 0xFF and len(vifs) > 1 and vifs[1] == 0x25:
            flags = int.from_bytes(raw, "little")
            values.extend({"Type": name, "Value": bool(flags >> bit & 1), "Unit": "NA",
                           "Timestamp": stamp} for bit, name in enumerate(_INFO_CODES))
        elif vifs[0] == 0xFF and len(vifs) > 1 and vifs[1] == 0x1C:
            values.append({"Type": "ALD last day", "Value": int.from_bytes(raw, "little"),
                           "Unit": "NA", "Timestamp": stamp})
        else:
            raise DecodeError(f"unknown record DIF 0x{dif:02x} VIF {bytes(vifs).hex()} "
                              f"at byte {i - size - len(vifs) - 1}")
    return out
