"""Transparency commands: labels, QR codes, the register, retention, open aggregates.

- `hypervision labels MEMBER -o labels.pdf|labels.html`: printable A4 sheets of QR labels;
- `hypervision qr DEVEUI -o code.svg|code.png`: one device's QR code;
- `hypervision register MEMBER [--html] [-o FILE]`: the register of processing activities;
- `hypervision retention plan` / `retention run [--dry-run] --yes`: enforce retention now;
- `hypervision opendata water|fill MEMBER --first D --last D [-k N] [-o FILE]`: open
  aggregates, small groups suppressed;
- `hypervision public setup`: create or update the public pages' database role.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from hypervision import audit, opendata, qr, retention
from hypervision import processing_register as reg
from hypervision.commands.common import admin_db, console, fail, settings_or_exit
from hypervision.export.formats import csv_safe
from hypervision.processing_register import Lang
from hypervision.public import labels as labels_mod
from hypervision.public import records
from hypervision.public.access import ensure_public_role
from hypervision.public.render import render
from hypervision.public.texts import UI

retention_app = typer.Typer(help="Retention per member and data class.", no_args_is_help=True)
opendata_app = typer.Typer(help="Open aggregates with small groups suppressed.",
                           no_args_is_help=True)
public_app = typer.Typer(help="Public pages: database role.", no_args_is_help=True)

LangOption = Annotated[str, typer.Option("--lang", help="fr (default) or en.")]
MemberOption = Annotated[list[str] | None, typer.Option(
    "--member", "-m", help="Only this member (repeatable); default: all.")]


def _lang(value: str) -> Lang:
    if value not in reg.LANGS:
        raise fail(f"--lang must be one of {', '.join(reg.LANGS)}")
    return value


def _member(conn: psycopg.Connection, slug: str) -> records.PublicMember:
    member = records.member(conn, slug)
    if member is None:
        raise fail(f"no member '{slug}' (see `hypervision tenants plan`)")
    return member


def labels(
    member: Annotated[str, typer.Argument(help="Member slug.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="labels.pdf or labels.html")],
    lang: LangOption = "fr",
) -> None:
    """Write printable A4 sheets of QR labels for the member's devices in service."""
    language = _lang(lang)
    if output.suffix not in (".pdf", ".html"):
        raise fail("--output must end in .pdf or .html")
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        name = _member(conn, member).name
        devices = records.member_devices(conn, member)
    if not devices:
        raise fail(f"member '{member}' has no device in service")
    found = labels_mod.labels_for(devices, settings, language)
    title = f"{name}: {len(found)} labels"
    if output.suffix == ".pdf":
        output.write_bytes(labels_mod.pdf(found, title, language))
    else:
        output.write_text(labels_mod.html(found, title, language), encoding="utf-8")
    if settings.public_base_url.startswith(("http://127.", "http://localhost")):
        console.print("[yellow]warning:[/] HV_PUBLIC_BASE_URL is a local address; printed"
                      " codes would lead nowhere")
    console.print(f"+ {output}: {len(found)} label(s) for {name}")


def qr_code(
    dev_eui: Annotated[str, typer.Argument(help="The device's DevEUI.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="code.svg or code.png")],
) -> None:
    """Write one device's QR code (it encodes the URL of the device's public page)."""
    if output.suffix not in (".svg", ".png"):
        raise fail("--output must end in .svg or .png")
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        row = conn.execute("SELECT public_id FROM hv.devices WHERE dev_eui = %s",
                           (dev_eui.strip().lower().replace(":", ""),)).fetchone()
    if row is None:
        raise fail(f"no device {dev_eui}")
    url = qr.page_url(settings, row[0])
    output.write_bytes(qr.svg(url, title=url) if output.suffix == ".svg" else qr.png(url))
    console.print(f"+ {output}: {url}")


def register_command(
    member: Annotated[str, typer.Argument(help="Member slug.")],
    html: Annotated[bool, typer.Option("--html", help="HTML instead of JSON.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    lang: LangOption = "fr",
) -> None:
    """Print (or write) the member's register of processing activities."""
    language = _lang(lang)
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        found = _member(conn, member)
        register = reg.build(found, records.member_devices(conn, member), settings,
                             records.network_operator(conn), language)
    if html:
        base = f"{settings.public_base_url.rstrip('/')}/m/{member}/register"
        other = "en" if language == "fr" else "fr"
        text = render(
            "register.html", language, r=register,
            intro=UI[language]["register_intro"].format(member=found.name),
            hosting_lang="en" if language == "en" and settings.hosting_description_en
            else "fr",
            inline_css=(Path(__file__).parents[1] / "public" / "static" / "public.css"
                        ).read_text(encoding="utf-8"),
            links={"css": "", "json": f"{base}.json",
                   "other_lang": base + ("?lang=en" if other == "en" else "")},
        )
    else:
        text = json.dumps(register.to_json(), ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"+ {output}")


def _print_plan(plans: list[retention.MemberPlan]) -> None:
    for plan in plans:
        counts = plan.counts()
        console.print(f"{'-' if counts else '='} {plan.member}: {plan.total()} row(s)"
                      f" would go")
        for (table, data_class), n in sorted(counts.items()):
            console.print(f"    {table} {data_class}: {n}")
        for table, chunks in plan.chunks().items():
            console.print(f"    {table}: {len(chunks)} whole chunk(s) dropped")
        if plan.kept_classes:
            console.print(f"    [yellow]kept, no retention declared:[/]"
                          f" {', '.join(plan.kept_classes)}")
        if plan.uncovered_tables:
            console.print(f"    [yellow]hypertables not under retention:[/]"
                          f" {', '.join(plan.uncovered_tables)}")


@retention_app.command("plan")
def retention_plan(member: MemberOption = None) -> None:
    """Show what a run would delete, per member, table and data class. Writes nothing."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        _print_plan(retention.plan(conn, members=member))


@retention_app.command("run")
def retention_run(
    member: MemberOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the deletion.")] = False,
) -> None:
    """Delete what has expired now (the daily job does the same), with an audit entry."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        if dry_run:
            _print_plan(retention.plan(conn, members=member))
            return
        if not yes:
            raise fail("retention deletes data: add --yes (or --dry-run to see what would go)")
        runs = retention.run(conn, members=member, actor=audit.cli_actor(), source="cli")
        if member is None:
            unattributed, _ = retention.expire_unattributed_dead_letters(
                conn, settings.dead_letter_retention_days, dt.datetime.now(dt.UTC),
                actor=audit.cli_actor(), source="cli")
            console.print(f"{'-' if unattributed else '='} dead letters of no member:"
                          f" {unattributed} row(s) removed")
    for done in runs:
        total = sum(done.removed.values())
        console.print(f"{'-' if total else '='} {done.plan.member}: {total} row(s) removed"
                      f" (audit entry {done.audit_id})")
        for (table, data_class), n in sorted(done.removed.items()):
            console.print(f"    {table} {data_class}: {n}")


def _write_aggregates(rows: list[opendata.Aggregate], output: Path | None) -> None:
    if output is not None and output.suffix == ".json":
        output.write_text(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2),
                          encoding="utf-8")
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["day", "area", "value", "devices", "suppressed"])
    for r in rows:
        writer.writerow([r.day.isoformat(), csv_safe(r.area), "" if r.value is None else r.value,
                         "" if r.devices is None else r.devices, str(r.suppressed).lower()])
    if output is None:
        typer.echo(buffer.getvalue(), nl=False)
    else:
        output.write_text(buffer.getvalue(), encoding="utf-8")


def _opendata(kind: opendata.Kind, member: str, first: dt.datetime, last: dt.datetime,
              k: int | None, output: Path | None) -> None:
    settings = settings_or_exit()
    threshold = k if k is not None else settings.opendata_k
    if threshold < 2:
        raise fail("-k must be at least 2")
    with admin_db(settings=settings) as conn:
        _member(conn, member)
        rows = opendata.member_aggregates(conn, member, kind, first.date(), last.date(),
                                          threshold)
    _write_aggregates(rows, output)
    if output is not None:
        hidden = sum(r.suppressed for r in rows)
        console.print(f"+ {output}: {len(rows)} row(s), {hidden} suppressed (k={threshold})")


First = Annotated[dt.datetime, typer.Option("--first", formats=["%Y-%m-%d"],
                                            help="First day (YYYY-MM-DD).")]
Last = Annotated[dt.datetime, typer.Option("--last", formats=["%Y-%m-%d"],
                                           help="Last day, included.")]
KOption = Annotated[int | None, typer.Option("-k", help="Minimum devices per group"
                                             " (default HV_OPENDATA_K).")]
OutOption = Annotated[Path | None, typer.Option("--output", "-o", help="FILE.csv or FILE.json")]


@opendata_app.command("water")
def opendata_water(member: str, first: First, last: Last, k: KOption = None,
                   output: OutOption = None) -> None:
    """Daily water consumption (litres) per area."""
    _opendata("water", member, first, last, k, output)


@opendata_app.command("fill")
def opendata_fill(member: str, first: First, last: Last, k: KOption = None,
                  output: OutOption = None) -> None:
    """Daily mean fill level (%) of waste containers per area."""
    _opendata("fill", member, first, last, k, output)


@public_app.command("setup")
def public_setup() -> None:
    """Create or update the public pages' role (login, password, the public views only)."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        ensure_public_role(conn, settings)
    console.print(f"= role {settings.public_role}: password and grants")


def register(app: typer.Typer) -> None:
    app.command("labels")(labels)
    app.command("qr")(qr_code)
    app.command("register")(register_command)
    app.add_typer(retention_app, name="retention")
    app.add_typer(opendata_app, name="opendata")
    app.add_typer(public_app, name="public")
