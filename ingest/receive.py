"""MQTT receiver: ChirpStack's MQTT integration → batches of envelopes on the Celery queue.

Thin on purpose: no database and no decoding here. It subscribes to
`application/+/device/+/event/+` at QoS 1 with a persistent session (clean_session off,
fixed client id), so the broker keeps what is published while the receiver is away and
delivers it on return. Several receivers share the subscription with
HV_MQTT_SHARED_GROUP (`$share/<group>/<topic>`): each event goes to one of them.
Acknowledgements are manual: a message is acknowledged only once the batch holding it is
in Redis (ingest.batcher). ChirpStack's integration must publish
with QoS 1 too (see infra/chirpstack/). Events may be JSON or binary protobuf
(HV_CHIRPSTACK_ENCODING); the worker reads both.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from hypervision.settings import Settings
from ingest.batcher import Batcher
from ingest.chirpstack import Envelope

log = logging.getLogger(__name__)


def celery_sender(settings: Settings) -> Any:
    """A function that puts one batch on the ingest queue and returns once it is there."""
    from hypervision.celery_app import INGEST_QUEUE, app

    def send(wire: list[list[Any]]) -> None:
        app.send_task("ingest.process_batch", args=[wire], queue=INGEST_QUEUE,
                      retry=True, retry_policy={"max_retries": 3})

    return send


def forget_session(settings: Settings, client_id: str) -> None:
    """Drop the broker's persistent session of `client_id` (a receiver retired for good,
    or a run's leftover), and the events queued in it: connecting with a clean session
    ends it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, clean_session=True)
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def subscription(settings: Settings) -> str:
    """The topic filter subscribed to: shared by the receivers of HV_MQTT_SHARED_GROUP."""
    group = settings.mqtt_shared_group
    return f"$share/{group}/{settings.mqtt_topic}" if group else settings.mqtt_topic


class MqttReceiver:
    def __init__(self, settings: Settings, batcher: Batcher) -> None:
        self.settings = settings
        self.batcher = batcher
        self.received = 0
        self.connected = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            client.username_pw_set(settings.mqtt_username, password)
        client.max_inflight_messages_set(settings.batch_size * 4)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        topic = subscription(self.settings)
        client.subscribe(topic, qos=1)
        log.info("subscribed to %s (session present: %s)", topic, flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        envelope = Envelope.from_topic(message.topic, bytes(message.payload), time.time(),
                                       self.settings.chirpstack_encoding)
        mid, qos = message.mid, message.qos
        self.batcher.add(envelope, lambda: client.ack(mid, qos))

    def start(self, timeout: float = 15.0) -> MqttReceiver:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise RuntimeError(
                f"no MQTT connection to {self.settings.mqtt_host}:{self.settings.mqtt_port}"
                f" after {timeout:.0f}s"
            )
        return self

    def stop(self) -> None:
        """Flush what is held (so it is acknowledged), then disconnect."""
        self.batcher.stop()
        self.client.disconnect()
        self.client.loop_stop()
