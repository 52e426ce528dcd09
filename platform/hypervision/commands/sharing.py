"""Sharing commands (docs/sharing.md):

- `hypervision shares list [--member M]`: agreements, their state and dates;
- `hypervision shares deliveries [--member M]`: the delivery log;
- `hypervision shares key`: the platform's SSH public key, for recipients' authorized_keys;
- `hypervision shares signing-key PROVIDER NAME`: the HMAC key of an agreement's deliveries
  by URL, to hand to its recipient;
- `hypervision shares expire`: end the agreements past their end now (the job does it every
  five minutes);
- `hypervision shares deliver`: send the deliveries due now;
- `hypervision shares publish-opendata`: refresh the open data files and their catalogue.
Agreements themselves are declared in tenant files and put in force by `tenants apply`.
"""

from __future__ import annotations

import typer
from psycopg.rows import dict_row

from hypervision import audit
from hypervision.commands.common import MemberOption, admin_db, console, settings_or_exit
from hypervision.sharing import agreements, deliveries, opendata_catalogue

shares_app = typer.Typer(help="Sharing agreements, deliveries and open data.",
                         no_args_is_help=True)


@shares_app.command("list")
def list_agreements(member: MemberOption = None) -> None:
    """Agreements, their recipient, dates and state (with --member, those it grants or
    receives)."""
    with admin_db() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM hv.share_agreements WHERE %(m)s::text IS NULL OR provider = %(m)s"
            " OR recipient_member = %(m)s ORDER BY provider, name", {"m": member}).fetchall()
    for r in rows:
        to = r["recipient_member"] or f"partner {r['recipient_partner']}"
        console.print(f"{r['provider']}/{r['name']} → {to}: {r['state']},"
                      f" {r['starts_at']:%Y-%m-%d} to {r['ends_at']:%Y-%m-%d}"
                      f" ({r['schema_name']}) — {r['spec']['purpose']}")
    if not rows:
        console.print("no agreement")


@shares_app.command("deliveries")
def list_deliveries(member: MemberOption = None) -> None:
    """The delivery log, newest first."""
    with admin_db() as conn:
        if member is None:
            slugs = [r[0] for r in conn.execute("SELECT slug FROM hv.members ORDER BY slug")]
        else:
            slugs = [member]
        seen: set[int] = set()
        for slug in slugs:
            for d in deliveries.log_of(conn, slug):
                if d["id"] in seen:
                    continue
                seen.add(d["id"])
                console.print(f"{d['started_at']:%Y-%m-%d %H:%M} {d['provider']}/"
                              f"{d['agreement']}: {d['status']} ({d['attempts']} attempt(s),"
                              f" {d['rows']} rows, {d['format']}) → {d['target']}"
                              + (f" — {d['error']}" if d["error"] else ""))


@shares_app.command("key")
def public_key() -> None:
    """The line recipients add to their SFTP server's authorized_keys."""
    console.print(deliveries.public_key(settings_or_exit()), soft_wrap=True)


@shares_app.command("signing-key")
def signing_key(provider: str, name: str) -> None:
    """The HMAC-SHA256 key (hex) of an agreement's deliveries by URL."""
    console.print(deliveries.signing_key(settings_or_exit(), provider, name).hex())


@shares_app.command("expire")
def expire() -> None:
    """End the agreements past their end now."""
    with admin_db() as conn:
        ended = agreements.expire(conn, actor=audit.cli_actor(), source="cli")
    for name in ended:
        console.print(f"- {name}: expired, access revoked")
    if not ended:
        console.print("= no agreement past its end")


@shares_app.command("deliver")
def deliver() -> None:
    """Send the deliveries due now."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        outcomes = deliveries.run_due(conn, settings)
    for o in outcomes:
        console.print(f"{o.agreement}: {o.status}, {o.rows} rows, {o.file_name}"
                      + (f" — {o.error}" if o.error else ""))
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


@shares_app.command("publish-opendata")
def publish_opendata() -> None:
    """Write the open data files and their DCAT-AP catalogue now."""
    settings = settings_or_exit()
    with admin_db(settings=settings) as conn:
        catalogue = opendata_catalogue.publish(conn, settings, actor=audit.cli_actor(),
                                               source="cli")
    console.print(f"{len(catalogue['dcat:dataset'])} datasets published in"
                  f" {opendata_catalogue.folder(settings)}")


def register(app: typer.Typer) -> None:
    app.add_typer(shares_app, name="shares")
