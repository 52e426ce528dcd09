"""Errors raised while decoding frames or loading the device catalogue.

See ingest/decode/README.md.
"""

from __future__ import annotations


class DecodeError(Exception):
    """A frame cannot be decoded: truncated, unknown channel, wrong port, codec failure.

    Decoders raise it for bad frames; the catalogue turns it into `Decoded.error` so that one
    bad uplink never fails a batch.
    """


class CatalogueError(Exception):
    """A device model file is invalid.

    The message names the file, the field and the problem, one line per problem, so that an
    operator can fix the YAML without reading Python tracebacks.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
