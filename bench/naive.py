"""The naive pipeline that bench/ingest.py compares the real one against.

What a first version of the pipeline would look like: the MQTT subscriber calls
`.delay()` once per message, and each Celery task looks its device up, decodes it and
writes it with one INSERT per row, committing each. The parsing and decoding are the real
pipeline's own (ingest.chirpstack, ingest.decode), so the ratio measures the architecture
(one task and one transaction per row versus batches and COPY), not different code.

Processes (started by bench/ingest.py, with the benchmark's HV_* environment):
    python -m bench.naive worker --concurrency 2    Celery worker on the `naive` queue
    python -m bench.naive subscribe                  MQTT subscriber, one task per message
Both use the benchmark's Redis, with a Celery app and a queue of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from celery import Celery
from kombu import Queue
from psycopg import sql

from hypervision.settings import get_settings
from ingest.chirpstack import Envelope, parse
from ingest.decode import Catalogue, UplinkToDecode

NAIVE_QUEUE = "naive"
settings = get_settings()
app = Celery("naive", broker=settings.redis_url)
app.conf.update(
    task_serializer="json", accept_content=["json"], task_ignore_result=True,
    result_backend=None, task_queues=(Queue(NAIVE_QUEUE),), task_default_queue=NAIVE_QUEUE,
    worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
)

_conn: psycopg.Connection | None = None
_catalogue: Catalogue | None = None


def connection() -> psycopg.Connection:
    """One connection per worker process, kept between tasks (not one per task: that
    would make the baseline a straw man)."""
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(settings.admin_conninfo())
    return _conn


def catalogue() -> Catalogue:
    global _catalogue
    if _catalogue is None:
        _catalogue = Catalogue.load()
    return _catalogue


@app.task(name="naive.store_event")
def store_event(topic: str, payload: str, received_at: float) -> None:
    """Parse, look up, decode and store one event: one INSERT per row, a commit each."""
    raw = payload.encode()
    envelope = Envelope.from_topic(topic, raw, received_at)
    event = parse(envelope, settings.max_payload_bytes)
    conn = connection()
    found = conn.execute(
        "SELECT d.model_id, d.variables, m.schema_name FROM hv.devices d"
        " JOIN hv.members m ON m.slug = d.member_slug WHERE d.dev_eui = %s",
        (event.dev_eui,),
    ).fetchone()
    conn.commit()
    if found is None:
        return
    model_id, variables, schema = found
    s = sql.Identifier(schema)
    if event.kind != "up":
        conn.execute(
            sql.SQL("INSERT INTO {}.device_events (time, dev_eui, kind, deduplication_id,"
                    " digest, event) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING").format(s),
            (event.time, event.dev_eui, event.kind, event.deduplication_id,
             hashlib.sha256(raw).digest(), payload),
        )
        conn.commit()
        return
    decoded = catalogue().decode_batch([UplinkToDecode(
        model_id, event.field("fPort", 0), event.field("data", b""), event.body.get("object"),
        event.time, {str(k): str(v) for k, v in (variables or {}).items()},
    )])[0]
    rx = event.field("rxInfo", [])
    best = max(rx, key=lambda r: r.get("rssi") or -1000, default=None)
    conn.execute(
        sql.SQL("INSERT INTO {}.uplinks (time, received_at, dev_eui, deduplication_id, f_cnt,"
                " f_port, dr, data, rssi, snr, gateway_count, object, codec, decode_error,"
                " event) VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s, %s) ON CONFLICT DO NOTHING").format(s),
        (event.time, received_at, event.dev_eui, event.deduplication_id,
         event.field("fCnt", 0), event.field("fPort", 0), event.field("dr", 0),
         event.field("data", b""), best.get("rssi") if best else None,
         best.get("snr") if best else None, len(rx),
         json.dumps(event.body.get("object")) if event.body.get("object") else None,
         decoded.codec, decoded.error, payload),
    )
    conn.commit()
    for reading in decoded.readings:
        conn.execute(
            sql.SQL("INSERT INTO {}.measurements (time, dev_eui, metric, value, unit,"
                    " deduplication_id) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING").format(s),
            (reading.time or event.time, event.dev_eui, reading.metric, reading.value,
             reading.unit, event.deduplication_id),
        )
        conn.commit()


def subscribe() -> None:
    """Subscribe with QoS 1 and send one task per message, until SIGTERM."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hv-bench-naive",
                         protocol=mqtt.MQTTv311, clean_session=True)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        c.subscribe(settings.mqtt_topic, qos=1)

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        ready.set()

    def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        store_event.delay(message.topic, message.payload.decode(), time.time())

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    client.loop_start()
    if not ready.wait(15):
        raise SystemExit("naive subscriber: no subscription after 15 s")
    print("naive subscriber ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    client.disconnect()
    client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["worker", "subscribe"])
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if args.role == "subscribe":
        subscribe()
    else:
        app.worker_main(["worker", "-Q", NAIVE_QUEUE, "-c", str(args.concurrency),
                         "--loglevel", "warning", "-n", "naive@%h", "--without-mingle",
                         "--without-gossip"])


if __name__ == "__main__":
    main()
