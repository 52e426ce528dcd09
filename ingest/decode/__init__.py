"""Payload decoding: device catalogue, built-in decoders, JS codec runtime.

One uplink goes in as `UplinkToDecode` and comes out as `Decoded` with canonical `Reading`s.
The file format, the mapping rules and the codec runtime are described in
ingest/decode/README.md.
"""

from ingest.decode.catalogue import Catalogue
from ingest.decode.errors import CatalogueError, DecodeError
from ingest.decode.metrics import METRICS
from ingest.decode.records import Decoded, Reading, UplinkToDecode
from ingest.decode.spec import DeviceModel

__all__ = [
    "METRICS",
    "Catalogue",
    "CatalogueError",
    "DecodeError",
    "Decoded",
    "DeviceModel",
    "Reading",
    "UplinkToDecode",
]
