"""The `hypervision` command line: one entry point for operators and for the demo.

Each group of commands lives in `hypervision.commands.<group>` and registers itself here.
Domain errors exit with code 1 and a clear message; see platform/README.md.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hypervision",
    help="Hypervision: a mutualised LoRaWAN hypervision platform for local authorities.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _register_all() -> None:
    from hypervision.commands import (
        accounts,
        alerts,
        analytics,
        api,
        audit,
        backup,
        billing,
        catalogue,
        chirpstack,
        codecs,
        coverage,
        database,
        demo,
        devices,
        export,
        incidents,
        labels,
        opendata,
        pipeline,
        public,
        retention,
        servers,
        services,
        sharing,
        superset,
        suppliers,
        syndicate,
        tenants,
        usage,
    )

    for group in (services, database, servers, tenants, accounts, catalogue, codecs,
                  chirpstack, pipeline, api, export, billing, audit, usage, backup, labels,
                  public, retention, opendata, sharing, superset, analytics, alerts, demo,
                  devices, syndicate, incidents, suppliers, coverage):
        group.register(app)


_register_all()
