"""Printed codes that lead to the public pages:

- `hypervision labels MEMBER -o labels.pdf|labels.html`: printable A4 sheets of QR labels;
- `hypervision qr DEVEUI -o code.svg|code.png`: one device's QR code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hypervision import qr
from hypervision.commands.common import MemberArg, admin_db, console, fail, settings_or_exit
from hypervision.commands.public import LangOption, lang_of, public_member
from hypervision.public import labels as labels_mod
from hypervision.public import records


def labels(
    member: MemberArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="labels.pdf or labels.html")],
    lang: LangOption = "fr",
) -> None:
    """Write printable A4 sheets of QR labels for the member's devices in service."""
    language = lang_of(lang)
    if output.suffix not in (".pdf", ".html"):
        raise fail("--output must end in .pdf or .html")
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        name = public_member(conn, member).name
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


def register(app: typer.Typer) -> None:
    app.command("labels")(labels)
    app.command("qr")(qr_code)
