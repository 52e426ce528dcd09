"""Groups envelopes into Celery tasks of hundreds, and tells each sender when its envelope
is safely queued.

A batch leaves when it holds `batch_size` envelopes or its oldest envelope has waited
`max_wait` seconds. Only once the task is in Redis are the envelopes' `on_queued`
callbacks called (MQTT PUBACK, HTTP 200): an envelope is never acknowledged before it is
safe. If Redis is unreachable the batch is kept and sent again with backoff; nothing is
acknowledged meanwhile, so the MQTT broker keeps the messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ingest.chirpstack import Envelope

log = logging.getLogger(__name__)

Send = Callable[[list[list[Any]]], None]


class Batcher:
    def __init__(self, send: Send, batch_size: int, max_wait: float) -> None:
        self._send = send
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._items: list[tuple[Envelope, Callable[[], object] | None]] = []
        self._oldest = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self.sent_batches = 0
        self.sent_envelopes = 0

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def add(self, envelope: Envelope, on_queued: Callable[[], object] | None = None) -> None:
        with self._cond:
            if not self._items:
                self._oldest = time.monotonic()
            self._items.append((envelope, on_queued))
            if len(self._items) >= self._batch_size:
                self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def stop(self, timeout: float = 30.0) -> None:
        """Send what is held, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[Envelope, Callable[[], object] | None]] | None:
        with self._cond:
            while True:
                if self._items:
                    due = self._oldest + self._max_wait - time.monotonic()
                    if len(self._items) >= self._batch_size or due <= 0 or self._stopping:
                        batch = self._items[: self._batch_size]
                        self._items = self._items[self._batch_size :]
                        self._oldest = time.monotonic()
                        return batch
                    self._cond.wait(due)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait(self._max_wait)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            wire = [envelope.to_wire() for envelope, _ in batch]
            delay = 0.5
            while True:
                try:
                    self._send(wire)
                    break
                except Exception as exc:  # the broker is down: keep the batch, try again
                    log.warning("could not queue a batch of %d (%s); retrying in %.1fs",
                                len(wire), exc, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self.sent_batches += 1
            self.sent_envelopes += len(batch)
            for _, on_queued in batch:
                if on_queued is not None:
                    on_queued()
