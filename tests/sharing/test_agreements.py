"""Sharing agreements enforced by the database: the recipient's reader role reads the
agreement's rows and columns through the share views, nothing else, and every read is in
both members' journals."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from hypervision.db import connect_admin, connect_as
from tests.sharing.conftest import BINS, METER, SCHEMA, Story

pytestmark = pytest.mark.services


def journal(story: Story, member: str, action: str) -> list[dict]:
    with connect_admin(story.settings) as conn:
        rows = conn.execute("SELECT actor, target, params, source FROM hv.audit_log"
                            " WHERE member_slug = %s AND action = %s ORDER BY id",
                            (member, action)).fetchall()
    return [{"actor": r[0], "target": r[1], "params": r[2], "source": r[3]} for r in rows]


def test_plan_shows_the_agreement(story: Story) -> None:
    lines = story.apply()
    share = [line for line in lines if "share waste-to-epci" in line]
    assert len(share) == 1
    assert share[0].startswith("= commune_a: share waste-to-epci → member epci_b:")
    assert "waste-fill (2 devices; fill.level)" in share[0]
    assert "public-task" in share[0] and "in force" in share[0]


def test_the_recipient_reads_the_shared_rows_and_columns_only(story: Story) -> None:
    with connect_as(story.settings, "epci_b_reader", autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT device, metric, count(*) FROM {}"
                                    " GROUP BY 1, 2 ORDER BY 1").format(
            sql.Identifier(SCHEMA, "measurements"))).fetchall()
        assert rows == [(BINS[0], "fill.level", 60), (BINS[1], "fill.level", 60)]
        devices = conn.execute(sql.SQL("SELECT device, name FROM {} ORDER BY 1").format(
            sql.Identifier(SCHEMA, "devices"))).fetchall()
        assert devices == [(BINS[0], "Bin Mairie"), (BINS[1], "Bin Port")]
        # Nothing else of A: not its tables, not its meter.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM tenant_commune_a.measurements")
        assert METER not in {r[0] for r in devices}


def test_a_stranger_to_the_agreement_cannot_read_it(story: Story) -> None:
    with connect_as(story.settings, "beta_reader", autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(SCHEMA, "measurements")))


def test_every_sql_read_is_in_both_journals(story: Story) -> None:
    before = {m: len(journal(story, m, "share.read")) for m in ("commune_a", "epci_b")}
    with connect_as(story.settings, "epci_b_reader", autocommit=True) as conn:
        # A read that returns no row is a read all the same.
        conn.execute(sql.SQL("SELECT * FROM {} WHERE value < 0").format(
            sql.Identifier(SCHEMA, "measurements"))).fetchall()
    for member, side in (("commune_a", "provider"), ("epci_b", "recipient")):
        entries = journal(story, member, "share.read")
        assert len(entries) == before[member] + 1
        last = entries[-1]
        assert last["actor"] == "system:sql:epci_b_reader" and last["source"] == "sql"
        assert last["target"] == f"{SCHEMA}.measurements"
        assert last["params"]["side"] == side
        assert last["params"]["agreement"] == "commune_a/waste-to-epci"


def test_the_declaration_is_in_both_journals(story: Story) -> None:
    for member in ("commune_a", "epci_b"):
        entries = journal(story, member, "share.declared")
        assert entries and entries[0]["params"]["agreement"]["purpose"].startswith("Plan")


def test_a_pseudonymised_agreement_shows_neither_identifier_nor_name_nor_place(
        story: Story) -> None:
    schema = "share_commune_a__meters_to_beta"
    with connect_as(story.settings, "beta_reader", autocommit=True) as conn:
        devices = conn.execute(sql.SQL("SELECT device, name, lat, lon FROM {}").format(
            sql.Identifier(schema, "devices"))).fetchall()
        readings = conn.execute(sql.SQL("SELECT DISTINCT device FROM {}").format(
            sql.Identifier(schema, "measurements"))).fetchall()
    assert len(devices) == 1
    pseudonym, name, lat, lon = devices[0]
    assert pseudonym != METER and len(pseudonym) == 16 and (name, lat, lon) == (None,) * 3
    assert readings == [(pseudonym,)]


def test_an_agreement_removed_from_the_file_is_withdrawn(story: Story) -> None:
    without = [s.model_copy(update={"shares": [x for x in s.shares
                                               if x.name != "meters-to-beta"]})
               if s.name == "commune_a" else s for s in story.specs]
    try:
        lines = story.apply(without)
        assert "- commune_a: share meters-to-beta withdrawn: access revoked (the journals keep" \
               " its reads)" in lines
        with connect_as(story.settings, "beta_reader", autocommit=True) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM share_commune_a__meters_to_beta.devices")
        assert journal(story, "beta", "share.withdrawn")
    finally:
        story.apply()
    with connect_as(story.settings, "beta_reader", autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM share_commune_a__meters_to_beta.devices")


def test_the_recipients_superset_connection_reads_the_shared_views(story: Story) -> None:
    """The URI Superset is given for B's dashboards (hypervision.superset.provision) logs
    in as B's reader: datasets on the share schema's views work there, and only there."""
    from hypervision.superset.provision import PASSWORD_MASK, member_target

    specs = {s.name: s for s in story.specs}
    for member, readable in (("epci_b", True), ("beta", False)):
        target = member_target(story.settings, specs[member])
        # Superset is given the URI with the password masked, and the password apart.
        uri = target.sqlalchemy_uri.replace("postgresql+psycopg2://", "postgresql://").replace(
            PASSWORD_MASK, story.settings.role_password(target.login_role))
        with psycopg.connect(uri, autocommit=True) as conn:
            query = sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(SCHEMA, "measurements"))
            if readable:
                (count,) = conn.execute(query).fetchone() or (0,)
                assert count >= 120  # the story adds a reading later
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(query)
