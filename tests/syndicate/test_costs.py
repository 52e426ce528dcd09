"""A year of a small network: two intercommunalities co-fund three gateways, four members
share the network's costs; every line of every member's 2025 statement is checked against
figures computed by hand here (tests/syndicate/network, conftest.py's usage).

Usage in 2025, from conftest.py:
- device-days: cc_aven 365 (one device all year), cc_odet 0, bourg 2 × 365 = 730,
  plage 365 + 184 (a second device from 1 July) = 549; total 1644;
- uplinks: bourg 6000 + 3900 + 100 (decode failures count, duplicates do not) = 10000,
  plage 5000, cc_aven 4000, cc_odet 1000; total 20000;
- gateway-days: a001 in service all year (365, aven ½, odet ½), a002 from 1 July
  (184, aven 1), a003 all year (365, odet 0.6, bourg 0.4); total 914.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pypdfium2
import pytest
import yaml
from typer.testing import CliRunner

from hypervision.cli import app
from hypervision.settings import Settings
from hypervision.syndicate import costs
from hypervision.syndicate.spec import NetworkSpecError, load
from tests.syndicate.conftest import MEMBERS, NETWORK

D = Decimal


def c(value: Decimal) -> Decimal:
    """Rounded to the cent, half up, as a statement is."""
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


# Depreciation in 2025: a001 3000 / 5 = 600 (whole year); a002 2400 / 4 × 184 / 365 (from
# 1 July); a003 1800 / 4 × 90 / 365 (its four years end on 1 April 2025).
DEP_A001 = c(D(3000) / 5)
DEP_A002 = c(D(2400) / 4 * 184 / 365)
DEP_A003 = c(D(1800) / 4 * 90 / 365)

EXPECTED: dict[str, dict[str, Decimal]] = {
    "cc_aven": {
        "hosting": c(D(7300) * 365 / 1644),
        "core-network": c(D(3000) * 4000 / 20000),
        "radio-maintenance": c(D(1200) * (D("0.5") * 365 + 184) / 914),
        "administration": c(D(1000) * 2 / 6),
        "insurance": c(D(400) / 4),
        "depreciation:5e1d00000000a001": c(DEP_A001 * D("0.5")),
        "depreciation:5e1d00000000a002": DEP_A002,
    },
    "cc_odet": {
        "hosting": D("0.00"),
        "core-network": c(D(3000) * 1000 / 20000),
        "radio-maintenance": c(D(1200) * (D("0.5") * 365 + D("0.6") * 365) / 914),
        "administration": c(D(1000) * 2 / 6),
        "insurance": c(D(400) / 4),
        "depreciation:5e1d00000000a001": c(DEP_A001 * D("0.5")),
        "depreciation:5e1d00000000a003": c(DEP_A003 * D("0.6")),
    },
    "bourg": {
        "hosting": c(D(7300) * 730 / 1644),
        "core-network": c(D(3000) * 10000 / 20000),
        "radio-maintenance": c(D(1200) * D("0.4") * 365 / 914),
        "administration": c(D(1000) * 1 / 6),
        "insurance": c(D(400) / 4),
        "depreciation:5e1d00000000a003": c(DEP_A003 * D("0.4")),
    },
    "plage": {
        "hosting": c(D(7300) * 549 / 1644),
        "core-network": c(D(3000) * 5000 / 20000),
        "radio-maintenance": D("0.00"),
        "administration": c(D(1000) * 1 / 6),
        "insurance": c(D(400) / 4),
    },
}


@pytest.fixture
def admin_conn(network_db: Settings, admin: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    return admin


def _statement(conn: psycopg.Connection[Any], member: str) -> costs.Statement:
    from hypervision.commands.syndicate import member_statement

    return member_statement(conn, load(NETWORK), member, 2025)


@pytest.mark.services
@pytest.mark.parametrize("member", MEMBERS)
def test_every_statement_line_matches_the_hand_computed_figure(
    admin_conn: psycopg.Connection[Any], member: str,
) -> None:
    s = _statement(admin_conn, member)
    assert {line.cost: line.amount for line in s.lines} == EXPECTED[member]
    assert s.total == sum(EXPECTED[member].values())


@pytest.mark.services
def test_the_members_shares_add_up_to_each_cost_within_rounding(
    admin_conn: psycopg.Connection[Any],
) -> None:
    statements = [_statement(admin_conn, m) for m in MEMBERS]
    for name, amount in (("hosting", 7300), ("core-network", 3000),
                         ("radio-maintenance", 1200), ("administration", 1000),
                         ("insurance", 400)):
        shared = sum(line.amount for s in statements for line in s.lines if line.cost == name)
        assert abs(shared - amount) <= D("0.02"), name
    depreciation = sum(line.amount for s in statements for line in s.lines
                       if line.key == "depreciation")
    assert abs(depreciation - (DEP_A001 + DEP_A002 + DEP_A003)) <= D("0.02")


@pytest.mark.services
def test_the_cli_gives_the_statement_as_csv_and_as_a_pdf(
    network_db: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from hypervision.settings import get_settings

    monkeypatch.setenv("HV_NETWORK_DIR", str(NETWORK))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["costs", "bourg", "--year", "2025", "--csv"])
        assert result.exit_code == 0, result.output
        rows = [line.split(",") for line in result.output.strip().splitlines()]
        assert rows[0][:3] == ["year", "member", "cost"]
        by_cost = {r[2]: D(r[-2]) for r in rows[1:]}
        assert by_cost["hosting"] == EXPECTED["bourg"]["hosting"]
        assert by_cost["total"] == sum(EXPECTED["bourg"].values())
        pdf = tmp_path / "bourg-2025.pdf"
        result = runner.invoke(app, ["costs", "bourg", "--year", "2025", "--pdf", str(pdf)])
        assert result.exit_code == 0, result.output
        doc = pypdfium2.PdfDocument(pdf)
        text = doc[0].get_textpage().get_text_range()
        total = f"{sum(EXPECTED['bourg'].values()):,.2f}".replace(",", " ").replace(".", ",")
        assert "Commune du Bourg (test)" in text and total in text
        doc[0].render(scale=1.5).to_pil().save(tmp_path / "bourg-2025.png")
        unknown = runner.invoke(app, ["costs", "bourg", "--year", "2019"])
        assert unknown.exit_code == 1 and "no year 2019" in unknown.output
    finally:
        get_settings.cache_clear()


def test_cofunders_shares_must_add_up_to_one(tmp_path: Path) -> None:
    for name in ("costs.yaml", "suppliers.yaml"):
        (tmp_path / name).write_text((NETWORK / name).read_text(encoding="utf-8"),
                                     encoding="utf-8")
    spec = yaml.safe_load((NETWORK / "gateways.yaml").read_text(encoding="utf-8"))
    spec["gateways"][0]["cofunders"][0]["share"] = 0.4
    (tmp_path / "gateways.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(NetworkSpecError, match="add up to 1"):
        load(tmp_path)
    spec["gateways"][0]["cofunders"][0]["share"] = 0.5
    spec["gateways"][0]["supplier"] = "nobody"
    (tmp_path / "gateways.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(NetworkSpecError, match="unknown supplier 'nobody'"):
        load(tmp_path)


def test_depreciation_stops_at_the_end_of_the_period_and_at_decommissioning() -> None:
    net = load(NETWORK)
    a003 = net.gateways.gateways[2]
    assert costs.depreciation(a003, 2026) == D("0.00")
    assert costs.depreciation(a003, 2024) == D(1800) / 4
    gone = a003.model_copy(update={"decommissioned_on": dt.date(2025, 2, 1)})
    assert costs.depreciation(gone, 2025) == c(D(1800) / 4 * 31 / 365)
