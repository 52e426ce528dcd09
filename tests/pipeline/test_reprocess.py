"""Reprocessing: a codec change applied to stored raw uplinks, idempotent and resumable."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hypervision import reprocess
from hypervision.db import connect_as
from ingest.chirpstack import Envelope
from ingest.decode import Catalogue
from ingest.decode.catalogue import MODELS_DIR
from ingest.process import Processor
from ingest.registry import Registry, load_entries

pytestmark = pytest.mark.services
WATER = "a1a1a1a1a1a10001"  # alpha's EM300-DI, 10 litres per pulse


def water_index(admin: psycopg.Connection, dedup: str) -> float:
    return admin.execute(
        "SELECT value FROM tenant_alpha.measurements WHERE deduplication_id = %s"
        " AND metric = 'water.index'", (dedup,),
    ).fetchone()[0]


def test_reprocessing_after_a_codec_change_replaces_measurements_without_doubling(
    platform_db: Any, admin: psycopg.Connection, simulator: Any, tmp_path: Path
) -> None:
    device = next(d for d in simulator.devices if d.dev_eui == WATER)
    items = [simulator.uplink(device) for _ in range(20)]
    with connect_as(platform_db, platform_db.ingest_role, autocommit=True) as conn:
        processor = Processor(Catalogue.load(), Registry(lambda: load_entries(conn)),
                              platform_db.max_payload_bytes, platform_db.fcnt_guard_window)
        processor.process(conn, [Envelope.from_topic(t, p, time.time()) for t, p in items])
    ids = [json.loads(p)["deduplicationId"] for _, p in items]
    pulses = [json.loads(p)["object"]["pulse"] for _, p in items]
    assert water_index(admin, ids[0]) == pulses[0] * 10

    # Version 2 of the model: the meter's pulse output was declared wrong by a factor 2.
    model = (MODELS_DIR / "milesight-em300-di.yaml").read_text()
    model = model.replace('version: "1.0.0"', 'version: "2.0.0"')
    model = model.replace("    scale_variable: litres_per_pulse\n",
                          "    scale_variable: litres_per_pulse\n    scale: 2\n")
    (tmp_path / "milesight-em300-di.yaml").write_text(model)
    catalogue = Catalogue.load(tmp_path)
    before = admin.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()[0]

    # The window of these 20 uplinks: other tests store uplinks of this meter too, one of
    # them dated days ahead (a gateway clock in the future).
    times = sorted(reprocess.datetime.fromisoformat(json.loads(p)["time"].replace(
        "000+00:00", "+00:00")) for _, p in items)
    filters = reprocess.Filters(dev_eui=WATER, start=times[0],
                                end=times[-1] + dt.timedelta(microseconds=1))
    job = reprocess.start(admin, "alpha", filters, actor="cli:test-reprocess")
    assert job.total == 20
    # Interrupted after one page of 7 ...
    job = reprocess.run(admin, job, catalogue, "cli:test-reprocess", page_size=7, max_pages=1)
    assert (job.status, job.done) == ("running", 7)
    # ... and resumed from where it stopped.
    job = reprocess.run(admin, reprocess.load_run(admin, job.id), catalogue, "cli:test-reprocess",
                        page_size=7)
    assert (job.status, job.done) == ("done", 20)

    assert [water_index(admin, i) for i in ids] == [p * 10 * 2 for p in pulses]
    versions = admin.execute(
        "SELECT DISTINCT codec_version FROM tenant_alpha.uplinks"
        " WHERE deduplication_id = ANY(%s::uuid[])", (ids,),
    ).fetchall()
    assert versions == [("2.0.0",)]
    assert admin.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()[0] == before

    # Running it again changes nothing.
    again = reprocess.run(admin, reprocess.start(admin, "alpha", filters, "cli:test-reprocess"),
                          catalogue, "cli:test-reprocess")
    assert again.done == 20
    assert [water_index(admin, i) for i in ids] == [p * 10 * 2 for p in pulses]
    assert admin.execute("SELECT count(*) FROM tenant_alpha.measurements").fetchone()[0] == before

    actions = [a for (a,) in admin.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s ORDER BY id", (f"run:{job.id}",))]
    assert actions == ["reprocess.start", "reprocess"]


def test_reprocessing_an_unknown_member_is_a_clear_error(admin: psycopg.Connection) -> None:
    with pytest.raises(reprocess.ReprocessError, match="unknown member"):
        reprocess.start(admin, "nobody", reprocess.Filters(), "cli:test")
