"""Dingtek ultrasonic bin level sensors (DF555, DF702, DF703): one frame format, three models.

Frames come on fPort 3, framed by 0x80 ... 0x81, big-endian, 17 bytes without GPS and 25
with GPS. Layout, from Dingtek's payload examples and codecs in The Things Network device
repository (vendor/dingtek/df555-codec.yaml, df702-codec.yaml and df702.js,
df703-codec.yaml):

| byte (no GPS) | byte (GPS) | value                                                      |
|---------------|------------|------------------------------------------------------------|
| 3             | 3          | data type: 0x01 heartbeat, 0x02 alarm, 0x03 parameters     |
| 5-6           | 5-6        | level: distance from the sensor to the contents, mm        |
| 7             | 7          | GPS flag; with GPS, 8-11 longitude and 12-15 latitude      |
|               |            | (float32 little-endian)                                    |
| 8             | 16         | temperature, °C                                            |
| 9-10          | 17-18      | tilt angle sign and value, °                               |
| 11            | 19         | high nibble: full (level) alarm, low nibble: fire alarm    |
| 12            | 20         | high nibble: tilt (fall) alarm, low nibble: battery alarm  |
| 14            | 22         | frame counter                                              |

A parameter frame (type 0x03) carries the firmware version (bytes 5, 6), the upload
interval in hours (7), the detection interval in minutes (8), the level threshold in cm
(9), the fire threshold in °C (10), the tilt threshold in ° (11), tilt detection on/off
(12) and the work mode (14).

The output keys and formats differ per model, as in each vendor codec: the DF702 codec
prints values with their unit ("2000 mm"), the DF555 and DF703 ones give bare numbers.
Dingtek's codecs convert GPS floats with a mantissa divided by 0x7FFFFF (not 0x800000);
the same conversion is kept here so that coordinates match the vendor's to the digit.
"""

from __future__ import annotations

from typing import Any

from ingest.decode.errors import DecodeError

FPORT = 3
VARIANTS = {"df555": "DF555", "df702": "DF702", "df703": "DF703"}


def _vendor_float(data: bytes, i: int) -> str:
    """Dingtek's float32 (little-endian) conversion, printed with 6 decimals as they do."""
    n = int.from_bytes(data[i : i + 4], "little")
    sign = -1 if n & 0x80000000 else 1
    exponent = ((n >> 23) & 0xFF) - 127
    mantissa = 1 + (n & 0x7FFFFF) / 0x7FFFFF
    return f"{sign * mantissa * 2.0**exponent:.6f}"


def _parameters(data: bytes, variant: str) -> dict[str, Any]:
    if variant == "df702":
        return {
            "periodic_interval": f"{data[7]} hours",
            "detection_interval": f"{data[8]} minutes",
            "full_alarm_threshold": f"{data[9]} cm",
            "fire_alarm_threshold": f"{data[10]} ℃",
            "tilt_alarm_threshold": f"{data[11]} °",
            "tilt_enable": bool(data[12]),
            "ultrasonic_range": f"{2000 if data[13] == 0 else 5000} mm",
        }
    out: dict[str, Any] = {
        "firmware": f"{data[5]}.{data[6]}",
        "uploadInterval": data[7],
        "detectInterval": data[8],
        "levelThreshold": data[9],
    }
    if variant == "df703":
        out |= {"fireThreshold": data[10], "fallThreshold": data[11], "fallEnable": bool(data[12])}
    out["workMode"] = data[14]
    return out


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink of model `variant` into the keys Dingtek's codec for it gives."""
    if f_port != FPORT:
        raise DecodeError(f"unknown fPort {f_port} (Dingtek sensors send on fPort {FPORT})")
    if len(data) not in (17, 25):
        raise DecodeError(f"frame of {len(data)} bytes; Dingtek frames have 17 or 25")
    if data[0] != 0x80 or data[-1] != 0x81:
        raise DecodeError("frame does not start with 0x80 and end with 0x81")
    # The DF702 codec reads a 17-byte frame as a heartbeat whatever its type.
    if data[3] == 0x03 and (len(data) == 25 or variant != "df702"):
        return _parameters(data, variant)
    gps = len(data) == 25
    t = 16 if gps else 8  # offset of the temperature; the fields after it follow
    level = int.from_bytes(data[5:7], "big")
    out: dict[str, Any] = {}
    if gps:
        out["longitude"] = _vendor_float(data, 8)
        out["latitude"] = _vendor_float(data, 12)
    full, fire = data[t + 3] >> 4, data[t + 3] & 0x0F
    tilt, battery = data[t + 4] >> 4, data[t + 4] & 0x0F
    if variant == "df702":
        # Dingtek's DF702 codec always negates the angle byte (its sign test is always false).
        out |= {
            "level": f"{level} mm",
            "full": bool(full),
            "fire": bool(fire),
            "tilt": bool(tilt),
            "battery": bool(battery),
            "angle": f"{-data[t + 2] or 0} °",
            "temperature": f"{data[t]} ℃",
        }
        return out
    out |= {"level": level, "alarmLevel": bool(full), "alarmBattery": bool(battery)}
    if variant == "df703":
        angle = data[t + 2] if data[t + 1] == 0 else -data[t + 2]
        out |= {"alarmFire": bool(fire), "alarmFall": bool(tilt), "angle": angle}
    out |= {"temperature": data[t], "frameCounter": data[t + 6]}
    return out
