"""Adeunis TIC readers on Linky electricity meters (CBE/Linky single-phase, three-phase).

The reader copies labels of the meter's TIC (télé-information client) into data frame
0x49, big-endian, after the frame code and the status byte (_adeunis.py; for TIC readers
bit 3 is a configuration inconsistency and bit 4 a TIC read error). Layout from Adeunis'
TIC technical reference and the codec and examples Adeunis publishes in The Things Network
device repository (vendor/adeunis/tic-cbe-linky-*-codec.yaml):

| variant          | bytes: label                                                             |
|------------------|--------------------------------------------------------------------------|
| `cbe-linky-mono` | 2-13 ADCO (text), 14-17 OPTARIF (text), 18 BASE Wh, 22 ISOUSC A,          |
|                  | 26 IINST A, 30 IMAX A, 34 PAPP VA, 38 HCHC Wh, 42 HCHP Wh, 46-49 PTEC    |
| `cbe-linky-tri`  | 2-13 ADCO, 14 BASE Wh, 18/22/26 IINST1-3 A, 30/34/38 IMAX1-3 A, 42 PMAX W, |
|                  | 46 PAPP VA                                                               |

Numbers are uint32; 0x80000000 (and an empty text) means the meter did not send the label:
Adeunis' codec then writes `<label>status: notFound`. Frame 0x4A is a TIC alarm: label
(bytes 2-11), alarm type (12) and value (13-).
"""

from __future__ import annotations

from typing import Any

from ingest.decode.codecs import _adeunis
from ingest.decode.errors import DecodeError

_MONO = (
    ("ADCO", 2, 12, None), ("OPTARIF", 14, 4, None), ("BASE", 18, 4, "Wh"),
    ("ISOUSC", 22, 4, "A"), ("IINST", 26, 4, "A"), ("IMAX", 30, 4, "A"), ("PAPP", 34, 4, "VA"),
    ("HCHC", 38, 4, "Wh"), ("HCHP", 42, 4, "Wh"), ("PTEC", 46, 4, None),
)
_TRI = (
    ("ADCO", 2, 12, None), ("BASE", 14, 4, "Wh"), ("IINST1", 18, 4, "A"),
    ("IINST2", 22, 4, "A"), ("IINST3", 26, 4, "A"), ("IMAX1", 30, 4, "A"), ("IMAX2", 34, 4, "A"),
    ("IMAX3", 38, 4, "A"), ("PMAX", 42, 4, "W"), ("PAPP", 46, 4, "VA"),
)
# variant: labels as (name, offset, size, unit); a unit of None marks a text label
VARIANTS = {"cbe-linky-mono": _MONO, "cbe-linky-tri": _TRI}
_ALARMS = ("manualTrigger", "labelAppearance", "labelDisappearance", "highTreshold",
           "lowTreshold", "endThresholdAlarm", "deltaPositive", "deltaNegative")


def _text(data: bytes) -> str:
    return bytes(b for b in data if b).decode("latin-1")


def decode(f_port: int, data: bytes, variant: str) -> dict[str, Any]:
    """Decode one uplink into the keys Adeunis' TIC codec puts in `data`."""
    if len(data) < 2:
        raise DecodeError("frame shorter than its code and status byte")
    flags = data[1]
    status = _adeunis.status(flags) | {
        "configurationInconsistency": bool(flags & 0x08),
        "readError": bool(flags & 0x10),
    }
    if data[0] == 0x4A:
        if len(data) < 13:
            raise DecodeError("TIC alarm frame truncated")
        return {"bytes": {
            "type": "0x4a TIC alarm", "status": status,
            "label": _text(data[2:12]) or "notFound",
            "alarmType": _ALARMS[data[12]] if data[12] < len(_ALARMS) else "",
            "value": _text(data[13:]) or "notFound",
        }}
    if data[0] != 0x49:
        raise DecodeError(f"frame code 0x{data[0]:02x} is not TIC data (0x49) nor alarm (0x4a)")
    labels = VARIANTS[variant]
    last = max(offset + size for _, offset, size, _ in labels)
    if len(data) < last:
        raise DecodeError(f"TIC data frame of {len(data)} bytes, {last} expected")
    content: dict[str, Any] = {"type": "0x49 TIC data", "status": status}
    for name, offset, size, unit in labels:
        raw = data[offset : offset + size]
        if unit is None:
            text = _text(raw)
            if text:
                content[name] = text
            else:
                content[f"{name}status"] = "notFound"
            continue
        value = int.from_bytes(raw, "big")
        if value == 0x80000000:
            content[f"{name}status"] = "notFound"
        else:
            content[name] = {"unit": unit, "value": value}
    return {"bytes": content}
