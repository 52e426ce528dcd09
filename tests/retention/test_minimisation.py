"""Minimisation: only the metrics a device model declares become measurements.

A vendor codec returns more than the model needs (serial number, firmware, sensor
switches, whatever ChirpStack's own codec adds): none of it may be stored as a
measurement. The frame goes through the real Processor into the real database.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from hypervision.db import connect_as
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue, UplinkToDecode
from ingest.outcomes import Outcome
from ingest.process import Processor
from ingest.registry import Registry, load_entries
from tests.retention.conftest import AIR

pytestmark = pytest.mark.services

# AM103 frame: battery 90 %, 21.5 °C, 45 %RH, 812 ppm CO2, then two device attributes the
# codec decodes but the model does not declare: serial number, sensor switches.
FRAME = bytes.fromhex(
    "01755a" "0367d700" "04685a" "077d2c03"
    "ff16" "6136d07846210042"   # serial number 6136d07846210042
    "ff18" "0013"               # temperature, humidity and CO2 sensors enabled
)

# Every measurement of a schema whose metric its device's model does not declare.
UNDECLARED = """
SELECT m.dev_eui, m.metric
FROM {schema}.measurements m
JOIN hv.devices d ON d.dev_eui = m.dev_eui
JOIN hv.device_models dm ON dm.id = d.model_id
WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(dm.spec->'metrics') x
                  WHERE x->>'metric' = m.metric)
"""


def test_codec_fields_the_model_does_not_declare_are_not_stored(
    ret_member: Any, simulator: Any, admin: psycopg.Connection
) -> None:
    platform_db = ret_member
    catalogue = Catalogue.load()
    model = next(d for d in simulator.devices if d.model_id == "milesight-am103")
    declared = {m.metric for m in catalogue.get("milesight-am103").metrics}

    # The codec does return the extra fields: minimisation is the mapping's doing.
    output, _, error = catalogue.codec_output(UplinkToDecode(
        model_id="milesight-am103", f_port=85, data=FRAME, object=None,
        recv_time=datetime.now(UTC), variables={}))
    assert error is None and output is not None
    assert output["sn"] == "6136d07846210042" and "sensor_enable" in output

    # A simulated AM103 uplink, sent as ret_e's air sensor (the shared test members'
    # tables stay as other tests expect them).
    topic, payload = simulator.uplink(model)
    topic = topic.replace(model.dev_eui, AIR)
    body = json.loads(payload)
    body["deviceInfo"]["devEui"] = AIR
    body["fPort"] = 85
    body["data"] = base64.b64encode(FRAME).decode()
    # ChirpStack's own codec may add fields too: they are compared, never stored.
    body["object"] = {"co2": 812, "temperature": 21.5, "humidity": 45, "battery": 90,
                      "occupancy": 27, "sn": "6136d07846210042"}
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        processor = Processor(catalogue, Registry(lambda: load_entries(conn)),
                              platform_db.max_payload_bytes, platform_db.fcnt_guard_window)
        result = processor.process(conn, [Envelope.from_topic(
            topic, json.dumps(body).encode(), time.time())])
    assert result.total(Outcome.STORED) == 1

    schema = "tenant_ret_e"
    rows = admin.execute(
        f"SELECT metric, value FROM {schema}.measurements WHERE deduplication_id = %s",
        (body["deduplicationId"],),
    ).fetchall()
    stored = dict(rows)
    assert stored == {"battery.level": 90.0, "air.temperature": 21.5, "air.humidity": 45.0,
                      "air.co2": 812.0}
    assert set(stored) <= declared
    assert 27.0 not in stored.values()  # ChirpStack's extra "occupancy"
    # And across the whole schema, whatever other tests stored.
    assert admin.execute(UNDECLARED.format(schema=schema)).fetchall() == []
