"""Supplier SLAs: interventions requested on an incident in the first quarter of 2026,
one on time, one late, one never arrived, one still within its promise; the report
counts each, lists the breaches, and the CLI prints them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from hypervision.accounts import Who
from hypervision.cli import app
from hypervision.settings import Settings
from hypervision.syndicate import incidents, suppliers
from hypervision.syndicate.spec import load
from tests.syndicate.conftest import NETWORK

WHO = Who("user:astreinte@syndicat-test.example.org")
T = dt.datetime(2026, 2, 3, 9, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


@pytest.mark.services
def test_the_sla_report_counts_a_late_intervention(
    network_db: Settings, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = admin
    conn.execute("DELETE FROM hv.interventions")
    declared = load(NETWORK).suppliers
    iid = incidents.open_incident(conn, WHO, member=None, title="Passerelle muette",
                                  detected_at=T, severity="medium",
                                  systems=["radio-network"])
    assert iid is not None

    def ask(supplier: str, at: dt.datetime) -> int:
        return suppliers.request(conn, WHO, declared, incident_id=iid, supplier=supplier,
                                 notified_at=at)

    on_time = ask("radiowest", T)
    suppliers.arrive(conn, WHO, on_time, T + 119 * M)
    suppliers.resolve(conn, WHO, on_time, T + 180 * M)
    late = ask("radiowest", T + dt.timedelta(days=10))
    suppliers.arrive(conn, WHO, late, T + dt.timedelta(days=10) + 121 * M)
    never = ask("coeur", T + dt.timedelta(days=20))
    now = T + dt.timedelta(days=55)           # 30 March 2026, still in the quarter
    waiting = ask("coeur", now - 30 * M)     # its two hours are still running
    ask("radiowest", dt.datetime(2026, 4, 1, tzinfo=dt.UTC))   # next quarter
    with pytest.raises(suppliers.InterventionError, match="does not serve"):
        suppliers.request(conn, WHO, declared, incident_id=iid, supplier="radiowest",
                          notified_at=T, brick="sensors")
    with pytest.raises(suppliers.InterventionError, match="arrival before notification"):
        suppliers.arrive(conn, WHO, waiting, now - 31 * M)

    report = {s.supplier: s for s in suppliers.sla_report(conn, declared, "2026Q1", now)}
    radio, coeur = report["radiowest"], report["coeur"]
    assert (radio.requests, radio.met, len(radio.breaches), radio.pending) == (2, 1, 1, 0)
    assert radio.share_met == 0.5
    assert radio.breaches[0].intervention_id == late
    assert radio.breaches[0].delay == 121 * M
    assert (coeur.requests, coeur.met, len(coeur.breaches), coeur.pending) == (2, 0, 1, 1)
    assert coeur.breaches[0].intervention_id == never and coeur.breaches[0].arrived_at is None
    assert coeur.share_met == 0.0

    monkeypatch.setenv("HV_NETWORK_DIR", str(NETWORK))
    from hypervision.settings import get_settings

    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["suppliers", "report", "2026Q1", "--csv"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    rows = [r.split(",") for r in out.output.strip().splitlines()]
    assert rows[1][:8] == ["2026Q1", "supplier", "radiowest", "2", "1", "1", "0", "0.5000"]
    breaches = [r for r in rows if r[1] == "breach"]
    # The CLI reports at the real now: by then the waiting request's promise ran out too.
    assert {r[8] for r in breaches} == {str(late), str(never), str(waiting)}
    actions = conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s ORDER BY id",
        (f"intervention:{on_time}",)).fetchall()
    assert [a[0] for a in actions] == ["intervention.request", "intervention.arrived",
                                       "intervention.resolved"]
