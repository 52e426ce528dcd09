"""The Redis transport of the pipeline's Celery app: kombu's, with two faults fixed.

1. A restart of Redis could end the worker for good, with "Unrecoverable error:
AttributeError: 'NoneType' object has no attribute 'hostname'". On losing Redis, Celery
(5.7) first collects the broken connection, which detaches the transport from its
connection object, then closes it; closing a channel puts its unacknowledged messages
back, which needs a new Redis client, whose parameters are read from the detached, now
None, connection object. The AttributeError is not among the connection errors that
Celery ignores there, so the worker stops. Here a channel whose transport is detached
raises a connection error instead: Celery ignores it and reconnects, and the messages
stay in Redis's unacknowledged set, delivered again after the visibility timeout.

2. kombu's Redis transport takes a message off its queue with BRPOP, then records it as
unacknowledged (a ZADD and an HSET) in a second round trip. If Redis stops between the
two, the message is in neither place: the consumer's reconnection drops it, and a batch
of uplinks that the receiver already had acknowledged to the MQTT broker is lost. (Seen
here: one batch of about 80 uplinks lost in one of three Redis restarts under load; the
gap is known upstream and still open.)

Here such a message is kept in the worker's memory and put back at the head of its
queue as soon as the transport opens a channel on a Redis that answers again, before
consuming resumes; the batch is then delivered again, like any unacknowledged one. A
batch delivered twice is harmless: writes are idempotent (ingest.store).

Both are still in kombu 5.7.0 and Celery 5.7.0 (the newest releases when this was
written). The transport is selected with Celery's `broker_transport` setting
(hypervision.celery_app), so the URL stays the plain `redis://` one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

# Messages taken off a queue whose receipt Redis never recorded: (payload, exchange,
# routing key), per process. A lock, because kombu may open channels from other threads.
_stranded: list[tuple[dict[str, Any], str, str]] = []
_lock = threading.Lock()


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: Any) -> None:
        try:
            super().append(message, delivery_tag)
        # The next three ignores: kombu's Redis transport internals, which celery-types'
        # stubs do not describe (this module patches exactly those).
        except self.channel.connection_errors:  # type: ignore[attr-defined]
            delivery = message.delivery_info
            with _lock:
                _stranded.append((message._raw, delivery["exchange"], delivery["routing_key"]))
            log.warning("Redis went away while a message was being received; it will be"
                        " queued again when Redis is back")
            raise


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requeue_stranded()

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # the transport was detached (fault 1 above)
            raise redis.ConnectionError("the connection to Redis was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]

    def _requeue_stranded(self) -> None:
        """Put the stranded messages back where the next BRPOP takes them first.

        A failure here (Redis gone again) keeps them for the next channel.
        """
        with _lock:
            if not _stranded:
                return
            with self.conn_or_acquire() as client:
                pipe = client.pipeline()
                for payload, exchange, routing_key in _stranded:
                    self._do_restore_message(  # type: ignore[attr-defined]
                        payload, exchange, routing_key, pipe)
                pipe.execute()
            log.warning("queued again %d message(s) received while Redis went away",
                        len(_stranded))
            _stranded.clear()


class Transport(kombu_redis.Transport):
    Channel = Channel
