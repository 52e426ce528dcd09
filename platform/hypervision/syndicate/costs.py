"""Each member's yearly statement of the network's shared costs (see network/README.md,
"Cost model", and docs/syndicate.md).

A statement is reproducible by hand from three things: the cost model
(network/costs.yaml), the gateways declared as assets (network/gateways.yaml) and the
members' usage over the year (`hypervision usage`). For the year Y:

1. Every cost of the year is shared by its key, over the members of the cost model:
   - `devices`: by device-days, the sum over the year's days of the member's active
     devices (devices heard that day; `active_devices` of `hypervision usage`);
   - `uplinks`: by uplinks received in the year (`uplinks` of `hypervision usage`);
   - `gateways`: by co-funded gateway-days: for each gateway, its days in service in Y
     times the member's share of it;
   - `fixed`: by the cost's `weights` (equal shares when none are given).
   The member's amount is cost × member's basis / total basis, rounded to the cent
   (half up); when the total basis is zero nobody is charged.
2. Each gateway's depreciation for Y, price / depreciation years × days of Y within its
   depreciation period (from commissioning, for that many years, until decommissioning) /
   days of Y, rounded to the cent, is charged to its co-funders by their shares
   (line `depreciation:<gateway id>`, basis = the share, total basis = 1).
3. The statement's total is the sum of its lines. Lines are rounded one by one, so the
   members' amounts of one cost may differ from the cost by a few cents.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg

from hypervision import usage
from hypervision.syndicate.spec import Cost, GatewayAsset, Network

CENT = Decimal("0.01")
COLUMNS = ("year", "member", "cost", "label", "key", "member_basis", "total_basis",
           "cost_amount", "member_amount", "currency")
KEY_FR = {"devices": "capteurs-jours", "uplinks": "messages reçus",
          "gateways": "passerelles-jours", "fixed": "part fixe",
          "depreciation": "part cofinancée"}


class CostError(Exception):
    """No statement can be made: unknown year or member, a member missing from the
    platform."""


@dataclass(frozen=True)
class MemberUsage:
    """What a member used in the year, the bases of keys `devices` and `uplinks`."""

    device_days: int
    uplinks: int


@dataclass(frozen=True)
class Line:
    cost: str
    label: str
    key: str
    member_basis: Decimal
    total_basis: Decimal
    cost_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Statement:
    member: str
    year: int
    currency: str
    lines: tuple[Line, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _year_bounds(year: int) -> tuple[dt.date, dt.date]:
    return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)


def _overlap(start: dt.date, end: dt.date | None, year: int) -> int:
    """Days of `year` within [start, end) (end None: open)."""
    first, after = _year_bounds(year)
    a = max(start, first)
    b = min(end or after, after)
    return max(0, (b - a).days)


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def days_in_service(g: GatewayAsset, year: int) -> int:
    return _overlap(g.commissioned_on, g.decommissioned_on, year)


def depreciation(g: GatewayAsset, year: int) -> Decimal:
    """Step 2: the gateway's depreciation charged in `year`, rounded to the cent."""
    end = _add_years(g.commissioned_on, g.depreciation_years)
    if g.decommissioned_on is not None:
        end = min(end, g.decommissioned_on)
    days = _overlap(g.commissioned_on, end, year)
    first, after = _year_bounds(year)
    return cents(g.purchase_price / g.depreciation_years * days / (after - first).days)


def _share(g: GatewayAsset, member: str) -> Decimal:
    return next((c.share for c in g.cofunders if c.member == member), Decimal(0))


def _bases(cost: Cost, net: Network, year: int,
           used: Mapping[str, MemberUsage]) -> dict[str, Decimal]:
    members = net.costs.members
    if cost.key == "devices":
        return {m: Decimal(used[m].device_days) for m in members}
    if cost.key == "uplinks":
        return {m: Decimal(used[m].uplinks) for m in members}
    if cost.key == "gateways":
        return {m: sum((_share(g, m) * days_in_service(g, year) for g in net.gateways.gateways),
                       Decimal(0)) for m in members}
    return {m: cost.weights.get(m, Decimal(0) if cost.weights else Decimal(1)) for m in members}


def statement(net: Network, year: int, member: str,
              used: Mapping[str, MemberUsage]) -> Statement:
    """Steps 1-3 for one member; `used` holds every member of the cost model."""
    if year not in net.costs.years:
        raise CostError(f"the cost model has no year {year}")
    if member not in net.costs.members:
        raise CostError(f"'{member}' is not among the members of the cost model")
    missing = set(net.costs.members) - set(used)
    if missing:
        raise CostError(f"no usage for {sorted(missing)}")
    spec = net.costs.years[year]
    lines: list[Line] = []
    for cost in spec.costs:
        bases = _bases(cost, net, year, used)
        total = sum(bases.values(), Decimal(0))
        mine = bases[member]
        amount = cents(cost.amount * mine / total) if total else Decimal("0.00")
        lines.append(Line(cost.name, cost.label, cost.key, mine, total, cost.amount, amount))
    if spec.gateway_depreciation:
        for g in net.gateways.gateways:
            share = _share(g, member)
            value = depreciation(g, year)
            if share and value:
                lines.append(Line(f"depreciation:{g.gateway_id}",
                                  f"Amortissement passerelle {g.name}", "depreciation",
                                  share, Decimal(1), value, cents(value * share)))
    return Statement(member, year, net.costs.currency, tuple(lines))


ConnectionFor = Callable[[str], AbstractContextManager[psycopg.Connection]]


def year_usage(control: psycopg.Connection, member_conn: ConnectionFor,
               members: Sequence[tuple[str, str]], year: int) -> dict[str, MemberUsage]:
    """Device-days and uplinks of each (slug, schema) over the year, from the usage
    meter (hypervision.usage.daily_usage: the same figures as `hypervision usage`)."""
    first, after = _year_bounds(year)
    rows = usage.daily_usage(control, member_conn, members, first, after - dt.timedelta(days=1))
    result: dict[str, list[int]] = {slug: [0, 0] for slug, _ in members}
    for r in rows:
        result[r.member][0] += r.active_devices
        result[r.member][1] += r.uplinks
    return {slug: MemberUsage(d, u) for slug, (d, u) in result.items()}


def cost_members(control: psycopg.Connection, net: Network) -> list[tuple[str, str]]:
    """(slug, schema) of the cost model's members; each must exist on the platform."""
    rows: dict[str, str] = dict(control.execute(
        "SELECT slug, schema_name FROM hv.members WHERE slug = ANY(%s)",
        (list(net.costs.members),)).fetchall())
    missing = [m for m in net.costs.members if m not in rows]
    if missing:
        raise CostError(f"members of the cost model unknown to the platform: {missing}")
    return [(m, rows[m]) for m in net.costs.members]


def number(value: Decimal) -> str:
    """A basis as written by hand: 730, 366.5, 0.4 (never 7.3E+2)."""
    return format(value.normalize(), "f")


def to_csv(s: Statement) -> str:
    """The statement as CSV: one row per line, then a `total` row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in s.lines:
        writer.writerow([s.year, s.member, line.cost, line.label, line.key,
                         number(line.member_basis), number(line.total_basis),
                         f"{line.cost_amount:.2f}", f"{line.amount:.2f}", s.currency])
    writer.writerow([s.year, s.member, "total", "Total", "", "", "", "", f"{s.total:.2f}",
                     s.currency])
    return out.getvalue()


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _euros(value: Decimal, currency: str) -> str:
    text = f"{value:,.2f}".replace(",", " ").replace(".", ",")
    return f"{text} {'€' if currency == 'EUR' else currency}"


def _fit(doc: Any, text: str, width: float) -> str:
    """The text, shortened with an ellipsis to fit the cell's width."""
    if doc.get_string_width(text) <= width:
        return text
    while text and doc.get_string_width(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def letterhead(conn: psycopg.Connection, slug: str) -> tuple[str, str]:
    """The names a printed statement is headed with: the member's and the syndicate's
    (`to_pdf`'s last two arguments)."""
    row = conn.execute(
        "SELECT (SELECT name FROM hv.members WHERE slug = %s),"
        " (SELECT name FROM hv.members WHERE kind = 'syndicate' ORDER BY slug LIMIT 1)",
        (slug,)).fetchone()
    member, syndicate = row if row else (None, None)
    return member or slug, syndicate or "Syndicat"


def to_pdf(s: Statement, member_name: str, syndicate_name: str) -> bytes:
    """A printable A4 statement (fpdf2, DejaVu Sans from Debian's fonts-dejavu-core)."""
    from fpdf import FPDF

    doc = FPDF(orientation="P", unit="mm", format="A4")
    if not (FONT.exists() and FONT_BOLD.exists()):
        raise CostError(f"{FONT} is missing: install Debian's fonts-dejavu-core")
    doc.add_font("dejavu", "", str(FONT))
    doc.add_font("dejavu", "B", str(FONT_BOLD))
    doc.set_title(f"Participation {s.year} — {member_name}")
    doc.set_creator("hypervision")
    doc.add_page()
    doc.set_font("dejavu", "B", 15)
    doc.cell(0, 9, f"{syndicate_name}", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("dejavu", "B", 12)
    doc.cell(0, 8, f"Participation aux coûts du réseau — année {s.year}",
             new_x="LMARGIN", new_y="NEXT")
    doc.set_font("dejavu", "", 11)
    doc.cell(0, 7, f"Membre : {member_name} ({s.member})", new_x="LMARGIN", new_y="NEXT")
    doc.ln(3)
    widths = (74, 30, 30, 28, 28)
    doc.set_font("dejavu", "B", 9)
    for w, head in zip(widths, ("Poste", "Clé", "Assiette / totale", "Coût",
                                "Montant dû"), strict=True):
        doc.cell(w, 7, head, border=1)
    doc.ln()
    doc.set_font("dejavu", "", 8.5)
    for line in s.lines:
        cells = (line.label, KEY_FR.get(line.key, line.key),
                 f"{number(line.member_basis)} / {number(line.total_basis)}",
                 _euros(line.cost_amount, s.currency), _euros(line.amount, s.currency))
        for i, (w, text) in enumerate(zip(widths, cells, strict=True)):
            doc.cell(w, 6.5, _fit(doc, text, w - 2), border=1, align="R" if i >= 3 else "L")
        doc.ln()
    doc.set_font("dejavu", "B", 10)
    doc.cell(sum(widths[:4]), 7, "Total", border=1)
    doc.cell(widths[4], 7, _euros(s.total, s.currency), border=1, align="R")
    doc.ln(12)
    doc.set_font("dejavu", "", 8)
    doc.multi_cell(0, 4.5, "Chaque poste est réparti selon sa clé : part du membre = coût ×"
                   " assiette du membre / assiette totale, arrondie au centime. Les assiettes"
                   " viennent du comptage d'usage de la plateforme (capteurs actifs par jour,"
                   " messages reçus) et des passerelles déclarées avec leurs cofinanceurs ;"
                   " l'amortissement d'une passerelle est réparti selon les parts de"
                   " cofinancement.")
    return bytes(doc.output())
