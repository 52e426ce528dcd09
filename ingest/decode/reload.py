"""The catalogue a worker decodes with, reloaded when the operator's catalogue folder changes.

Workers check the folder at most every `interval` seconds (HV_CATALOGUE_RELOAD_INTERVAL),
before a batch: a change of any file's name, size or modification time loads the whole
catalogue again. A catalogue that no longer loads (a model file half edited by hand) is
logged and the previous one is kept (the built-in models alone if the folder was already
broken when the worker started), so that decoding goes on. See ingest/decode/README.md,
"Operator catalogue".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ingest.decode.catalogue import Catalogue
from ingest.decode.errors import CatalogueError

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path | None) -> Fingerprint:
    """(relative path, size, mtime in ns) of every file under `folder`; () when absent."""
    if folder is None or not folder.is_dir():
        return ()
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class CatalogueSource:
    """Hands out the current catalogue; reloads it when the operator folder changed."""

    def __init__(
        self,
        operator_dir: Path | None,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operator_dir = operator_dir
        self.interval = interval
        self._clock = clock
        self._seen = fingerprint(operator_dir)
        try:
            self._catalogue = Catalogue.load_with_operator(operator_dir)
        except CatalogueError as exc:
            # A worker must decode the built-in models even if the operator's folder is
            # broken when it starts; the folder is loaded again once it changes.
            log.error("operator catalogue not loaded, built-in models only:\n%s", exc)
            self._catalogue = Catalogue.load()
        self._checked = clock()
        self.reloads = 0

    def current(self) -> Catalogue:
        """The catalogue to decode the next batch with (checks the folder when due)."""
        now = self._clock()
        if now - self._checked >= self.interval:
            self._checked = now
            self.reload_if_changed()
        return self._catalogue

    def reload_if_changed(self) -> bool:
        """Load the catalogue again if the folder changed; True when a new one is in use."""
        seen = fingerprint(self.operator_dir)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            catalogue = Catalogue.load_with_operator(self.operator_dir)
        except CatalogueError as exc:
            log.error("operator catalogue not reloaded, the previous one stays in use:\n%s", exc)
            return False
        self._catalogue = catalogue
        self.reloads += 1
        log.info("catalogue reloaded: %d models", len(catalogue.models))
        return True
