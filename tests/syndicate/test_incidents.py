"""An incident of member `bourg`, detected at 08:00 UTC on 10 March 2026 and significant
under NIS2, then marked at 10:00 as a breach of its water meters' data: the clocks fall
due at the hours the law sets, each alerts a quarter of its time before (warning share
0.25) and again when it runs out, the e-mails reach the DPO through a real SMTP server,
the notification drafts are filled from the record, and every change is audited."""

from __future__ import annotations

import datetime as dt
from email.header import decode_header, make_header
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hypervision import audit, placement
from hypervision.accounts import Who
from hypervision.alerts import notify
from hypervision.analytics import members
from hypervision.settings import Settings
from hypervision.syndicate import incident_detectors, incident_drafts, incidents
from tests.alerts.conftest import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]
T0 = dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)       # detection
T1 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)      # the breach is known
H = dt.timedelta(hours=1)
WHO = Who("user:dpo@syndicat-test.example.org")
SHARE = 0.25


def _alerts(conn: psycopg.Connection[Any], incident_id: int) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT a.*, array(SELECT target FROM tenant_bourg.alert_notifications n"
            " WHERE n.alert_id = a.id ORDER BY target) AS targets"
            " FROM tenant_bourg.alerts a WHERE rule = %s", (f"incident:{incident_id}",)
        ).fetchall()
    return {r["dev_eui"]: r for r in rows}


@pytest.mark.services
def test_a_breach_at_a_known_time_has_the_right_deadlines_alerts_and_drafts(
    network_db: Settings, admin: psycopg.Connection[Any], smtp_sink: tuple[SmtpSink, int],
) -> None:
    conn = admin
    conn.execute("TRUNCATE tenant_bourg.alert_notifications, tenant_bourg.alerts")
    # Incidents other tests left open would have clocks of their own.
    conn.execute("UPDATE hv.incidents SET state = 'closed', closed_at = now()"
                 " WHERE state = 'open'")
    found = incidents.open_incident(
        conn, WHO, member="bourg", title="Accès non autorisé au serveur de relève",
        description="Connexion d'un compte inconnu.", detected_at=T0, severity="high",
        significant=True, systems=["hypervision"])
    assert found is not None
    iid = found
    incidents.mark_breach(conn, WHO, iid, known_at=T1, data_classes=["water-consumption"])
    record = incidents.get(conn, iid)
    # bourg declares two water meters: two households' data.
    assert record["data_subjects"] == 2
    due = {c.name: c.due_at for c in incidents.incident_clocks(conn, iid)}
    assert due == {
        "nis2-early-warning": T0 + 24 * H,
        "nis2-notification": T0 + 72 * H,
        "nis2-final-report": dt.datetime(2026, 4, 13, 8, 0, tzinfo=dt.UTC),  # + one month
        "gdpr-notification": T1 + 72 * H,
    }
    # The DPO is told of the breach at once, and only the DPO.
    assert _alerts(conn, iid)["dpo"]["targets"] == ["dpo@bourg.example.org"]

    # 17 h after detection nothing is due; at 18 h (6 h left of 24) the early warning.
    assert incidents.check_clocks(conn, T0 + 17 * H, SHARE).warned == []
    assert incidents.check_clocks(conn, T0 + 18 * H, SHARE).warned == [(iid, "nis2-early-warning")]
    again = incidents.check_clocks(conn, T0 + 18 * H + dt.timedelta(minutes=1), SHARE)
    assert again.warned == [] and again.overdue == []
    warning = _alerts(conn, iid)["nis2-early-warning"]
    assert "reste 6 h 00" in warning["message"] and warning["severity"] == "warning"
    assert warning["targets"] == ["astreinte@syndicat-test.example.org",
                                  "dpo@bourg.example.org", "technique@bourg.example.org"]
    # Not filed at 24 h: overdue.
    assert incidents.check_clocks(conn, T0 + 24 * H, SHARE).overdue == [
        (iid, "nis2-early-warning")]
    incidents.file(conn, WHO, iid, "nis2-early-warning", T0 + 25 * H, "CERT-2026-0042")
    # The NIS2 notification, filed at 30 h, moves the final report to a month after it.
    incidents.file(conn, WHO, iid, "nis2-notification", T0 + 30 * H)
    clocks = {c.name: c for c in incidents.incident_clocks(conn, iid)}
    assert clocks["nis2-final-report"].due_at == dt.datetime(2026, 4, 11, 14, 0, tzinfo=dt.UTC)
    assert clocks["nis2-early-warning"].status(T0 + 26 * H) == "filed-late"
    # GDPR: 72 h from 10:00, warned at 54 h (18 h left), never overdue once filed.
    assert incidents.check_clocks(conn, T1 + 53 * H, SHARE).warned == []
    assert incidents.check_clocks(conn, T1 + 54 * H, SHARE).warned == [(iid, "gdpr-notification")]
    assert "reste 18 h 00" in _alerts(conn, iid)["gdpr-notification"]["message"]
    incidents.file(conn, WHO, iid, "gdpr-notification", T1 + 60 * H)
    assert _alerts(conn, iid)["gdpr-notification"]["state"] == "closed"
    assert incidents.check_clocks(conn, T1 + 73 * H, SHARE).overdue == []

    # The e-mails go out through the alert machinery, to a real SMTP server.
    sink, port = smtp_sink
    settings = network_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port,
                                             "smtp_from": "alertes@hv.test"})
    delivery = notify.deliver_due(conn, members.member(conn, "bourg"), settings)
    assert delivery.failed == [] and len(delivery.sent) == 1 + 3 + 3 + 3
    to_dpo = [m for _, rcpt, m in sink.messages if rcpt == ["dpo@bourg.example.org"]]
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in to_dpo]
    assert any(s.endswith(f"incident n°{iid} — gdpr-notification") for s in subjects)
    assert any(s.endswith(f"incident n°{iid} — dpo") for s in subjects)

    # Drafts from the record.
    drafts = incident_drafts.drafts(conn, iid, T1 + 2 * H)
    assert set(drafts) == {"nis2-early-warning", "nis2-notification", "nis2-final-report",
                           "gdpr-notification"}
    cnil = drafts["gdpr-notification"]
    assert cnil["Organisme (responsable de traitement)"] == "Commune du Bourg (test)"
    assert cnil["SIREN"] == "210000013"
    assert "dpo@bourg.example.org" in cnil["Délégué à la protection des données"]
    assert cnil["Date de prise de connaissance (début du délai de 72 h)"] == "2026-03-10 10:00 UTC"
    assert cnil["Nombre approximatif de personnes concernées"] == "2"
    assert cnil["Nature de la violation"] == "Perte de confidentialité"
    assert cnil["Motifs du retard (notification au-delà de 72 h)"] == "Sans objet"
    assert incident_drafts.cnil(conn, record, T1 + 80 * H)[
        "Motifs du retard (notification au-delà de 72 h)"] == incident_drafts.TODO
    early = drafts["nis2-early-warning"]
    assert early["Date et heure de détection"] == "2026-03-10 08:00 UTC"
    assert "Gravité" not in early and drafts["nis2-notification"]["Gravité"] == "Élevée"

    # Every change is audited, with the record after it.
    actions = conn.execute(
        "SELECT action FROM hv.audit_log WHERE target = %s ORDER BY id",
        (f"incident:{iid}",)).fetchall()
    assert [a[0] for a in actions] == ["incident.open", "incident.breach", "incident.file",
                                       "incident.file", "incident.file"]


@pytest.mark.services
def test_the_platform_opens_incidents_itself_once_per_occurrence(
    network_db: Settings, admin: psycopg.Connection[Any],
) -> None:
    conn = admin
    settings = network_db.model_copy(update={"incident_export_jump_min_rows": 1000})
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    # A member exporting 5000 rows in a day without any history: a jump.
    audit.record(conn, actor="user:paul@plage.example.org", member="plage",
                 action="export.csv", target="measurements", rows=5000, source="api")
    # (Other members' exports of the test session may jump too: only plage's count here.)
    def plage(opened: list[int]) -> list[int]:
        return [i for i in opened if incidents.get(conn, i)["member_slug"] == "plage"]

    assert len(plage(incident_detectors.export_jump(
        conn, settings, now + dt.timedelta(minutes=1)))) == 1
    assert plage(incident_detectors.export_jump(
        conn, settings, now + dt.timedelta(minutes=2))) == []
    # Uplinks stop: 40 minutes of silence after the last one (limit 30).
    mine = now - dt.timedelta(minutes=1)
    conn.execute(sql.SQL(
        "INSERT INTO tenant_plage.uplinks (time, received_at, dev_eui, deduplication_id,"
        " f_cnt, f_port, data, event) VALUES (%s, %s, '5e1d0d0d00000001', gen_random_uuid(),"
        " 1, 1, '\\x00'::bytea, '{}'::json)"), (mine, mine))
    last = incident_detectors.last_uplink(placement.Connections(settings, conn), now)
    assert last is not None and last >= mine
    assert incident_detectors.ingestion_stopped(conn, settings, last + dt.timedelta(
        minutes=10)) is None
    later = last + dt.timedelta(minutes=40)
    stopped = incident_detectors.ingestion_stopped(conn, settings, later)
    assert stopped is not None
    assert incidents.get(conn, stopped)["detected_at"] == last + dt.timedelta(minutes=30)
    assert incident_detectors.ingestion_stopped(conn, settings, later) is None
    # A full backup ran, then none for 27 hours (limit 26).
    audit.record(conn, actor="system:backup", member=None, action="backup.run",
                 target="full-test.tar", source="job")
    assert incident_detectors.backup_missing(conn, settings, now + 25 * H) is None
    missing = incident_detectors.backup_missing(conn, settings, now + 27 * H)
    assert missing is not None and incidents.get(conn, missing)["member_slug"] is None


@pytest.mark.services
def test_a_broken_audit_chain_opens_an_incident_of_the_syndicate(
    network_db: Settings, admin: psycopg.Connection[Any],
) -> None:
    # Tampered with inside a transaction rolled back at the end, as tests/audit does.
    admin.autocommit = False
    try:
        now = admin.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        assert incident_detectors.audit_chain(admin, now) is None
        entry = audit.record(admin, actor="user:a@bourg.example.org", member="bourg",
                             action="measurements.read", rows=1, source="api")
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute("UPDATE hv.audit_log SET rows = 1000 WHERE id = %s", (entry,))
        admin.execute("SET LOCAL session_replication_role = origin")
        found = incident_detectors.audit_chain(admin, now)
        assert found is not None
        incident = incidents.get(admin, found)
        assert (incident["member_slug"], incident["severity"], incident["source"]) == (
            None, "critical", "audit_chain")
        assert f"entry {entry}" in incident["description"]
        assert incident_detectors.audit_chain(admin, now) is None  # once per break
    finally:
        admin.rollback()
        admin.autocommit = True
