"""`hypervision migrate`: apply pending control and member migrations; `hypervision
schema`: the committed SCHEMA.sql of each schema kind (hypervision.schema_file)."""

from __future__ import annotations

import itertools

import typer

from hypervision import migrate, placement, schema_file
from hypervision.commands.common import console, exit_on_errors, settings_or_exit
from hypervision.db import connect_admin
from hypervision.roles import member_role


def run_migrations() -> int:
    """The catalogue's migrations on the primary, then each member's on the database
    server it is placed on (hypervision.placement)."""
    settings = settings_or_exit()
    with connect_admin(settings) as conn:
        count = migrate.migrate_control(conn, log=console.print)
        members = conn.execute(
            "SELECT slug, schema_name, server FROM hv.members ORDER BY server NULLS FIRST, slug"
        ).fetchall()
    for server, placed in itertools.groupby(members, key=lambda row: row[2]):
        with placement.connect_admin(settings, server) as conn:
            for slug, schema, _ in placed:
                count += migrate.migrate_tenant(conn, schema, member_role(slug, "owner"),
                                                log=console.print)
    return count


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate_command() -> None:
        """Apply pending migrations: the catalogue, then every member schema."""
        with exit_on_errors(placement.PlacementError):
            count = run_migrations()
        console.print(f"= {count} migration(s) applied" if count else "= up to date")

    @app.command("schema")
    def schema_command(
        write: bool = typer.Option(False, "--write", help="Rewrite the SCHEMA.sql files."),
    ) -> None:
        """Compare migrations/*/SCHEMA.sql with a fresh migration of a scratch database
        (exit 1 when they differ), or rewrite them with --write."""
        settings = settings_or_exit()
        with exit_on_errors():
            if write:
                for written in schema_file.write(settings, log=console.print):
                    console.print(f"~ {written}")
                return
            stale = schema_file.differences(settings)
        if stale:
            console.print(f"[red]SCHEMA.sql differs from the migrations: {', '.join(stale)}"
                          "[/red] (hypervision schema --write)")
            raise typer.Exit(1)
        console.print("= SCHEMA.sql matches the migrations")
