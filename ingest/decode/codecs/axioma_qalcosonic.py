"""Axioma Qalcosonic W1 ultrasonic water meter, "enhanced 24 h" LoRaWAN frame.

Frames come on fPort 100, 51 bytes, little-endian. Layout from Axioma's payload
description as published in The Things Network device repository
(vendor/axioma/qalcosonic-w1-codec.yaml and qalcosonic-w1-codec.js):

| bytes | value                                                                      |
|-------|----------------------------------------------------------------------------|
| 0     | frame version (0x01)                                                       |
| 1-4   | time of the logged index, Unix seconds                                     |
| 5     | status bits: 0x04 low battery, 0x08 permanent error, 0x10 temporary error, |
|       | 0x20 leakage, 0x60 backflow, 0xA0 burst, 0x80 low temperature              |
| 6-9   | logged volume, litres                                                      |
| 10-   | 23 hourly volume deltas of 14 bits each (litres, LSB first), then a 6-bit  |
|       | history multiplier                                                         |

The current index is the logged volume plus the 23 deltas. Volumes are given in m³ as in
the vendor's codec.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ingest.decode.errors import DecodeError

FPORT = 100
LENGTH = 51


def decode(f_port: int, data: bytes) -> dict[str, Any]:
    """Decode one uplink into the keys Axioma's W1 codec puts in `data`."""
    if f_port != FPORT:
        raise DecodeError(f"unsupported fPort {f_port} (the W1 sends on fPort {FPORT})")
    if len(data) != LENGTH:
        raise DecodeError(f"unsupported payload length {len(data)} (expected {LENGTH})")
    if data[0] != 0x01:
        raise DecodeError(f"unsupported frame version 0x{data[0]:x}")
    timestamp = int.from_bytes(data[1:5], "little")
    status = data[5]
    logged = int.from_bytes(data[6:10], "little")
    backflow = status & 0x60 == 0x60
    burst = status & 0xA0 == 0xA0
    out: dict[str, Any] = {
        "payload_format": "AXIOMA_W1_ENHANCED_24H",
        "frame_version": data[0],
        "payload_bytes": len(data),
        "timestamp_unix": timestamp,
        "timestamp_utc": datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "status": status,
        "low_battery": bool(status & 0x04),
        "permanent_error": bool(status & 0x08),
        "temporary_error": bool(status & 0x10),
        "pipe_empty": status == 0x10,
        "backflow": backflow,
        "burst": burst,
        "leakage": bool(status & 0x20) and not backflow and not burst,
        "low_temperature": bool(status & 0x80) and not burst,
        "log_volume_m3": logged / 1000,
    }
    # The deltas are packed least significant bit first from byte 10 on.
    packed = int.from_bytes(data[10:], "little")
    total = 0
    for i in range(23):
        delta = packed >> (i * 14) & 0x3FFF
        out[f"delta_{i + 1}_m3"] = delta / 1000
        total += delta
    out["history_count"] = 23
    out["history_total_m3"] = total / 1000
    out["current_volume_m3"] = (logged + total) / 1000
    out["history_multiplier"] = packed >> (23 * 14) & 0x3F
    return out
