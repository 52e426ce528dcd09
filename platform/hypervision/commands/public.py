"""What the public pages serve, from the command line:

- `hypervision register MEMBER [--html] [-o FILE]`: the register of processing activities;
- `hypervision public setup`: create or update the public pages' database role.

The member lookup and `--lang` of the other transparency commands (labels.py,
opendata.py) live here too: they show what the public pages show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from hypervision import processing_register as reg
from hypervision.commands.common import MemberArg, admin_db, console, fail, settings_or_exit
from hypervision.processing_register import Lang
from hypervision.public import records
from hypervision.public.access import ensure_public_role
from hypervision.public.render import render
from hypervision.public.texts import UI

public_app = typer.Typer(help="Public pages: database role.", no_args_is_help=True)

LangOption = Annotated[str, typer.Option("--lang", help="fr (default) or en.")]


def lang_of(value: str) -> Lang:
    """The `--lang` value, checked."""
    if value not in reg.LANGS:
        raise fail(f"--lang must be one of {', '.join(reg.LANGS)}")
    return value


def public_member(conn: psycopg.Connection, slug: str) -> records.PublicMember:
    """The member as its public pages show it; exit 1 if there is none."""
    member = records.member(conn, slug)
    if member is None:
        raise fail(f"no member '{slug}' (see `hypervision tenants plan`)")
    return member


def register_command(
    member: MemberArg,
    html: Annotated[bool, typer.Option("--html", help="HTML instead of JSON.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    lang: LangOption = "fr",
) -> None:
    """Print (or write) the member's register of processing activities."""
    language = lang_of(lang)
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        found = public_member(conn, member)
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


@public_app.command("setup")
def public_setup() -> None:
    """Create or update the public pages' role (login, password, the public views only)."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        ensure_public_role(conn, settings)
    console.print(f"= role {settings.public_role}: password and grants")


def register(app: typer.Typer) -> None:
    app.command("register")(register_command)
    app.add_typer(public_app, name="public")
