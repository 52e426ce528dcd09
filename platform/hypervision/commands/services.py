"""`hypervision services start|stop|status|restart`: the platform's own local services.

PostgreSQL + TimescaleDB, Redis and Mosquitto for development and tests, each on its own
port with its data under HV_DATA_DIR; see hypervision/daemons/ and platform/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import typer
from rich.markup import escape
from rich.table import Table

from hypervision import daemons
from hypervision.commands.common import console, fail, settings_or_exit
from hypervision.settings import Settings


class Service(StrEnum):
    """The services one can name on the command line; none means all of them."""

    postgres = "postgres"
    redis = "redis"
    mosquitto = "mosquitto"


Action = Callable[..., None]

STARTS: dict[Service, Action] = {
    Service.postgres: daemons.postgres.start,
    Service.redis: daemons.redis.start,
    Service.mosquitto: daemons.mosquitto.start,
}
STOPS: dict[Service, Action] = {
    Service.postgres: daemons.postgres.stop,
    Service.redis: daemons.redis.stop,
    Service.mosquitto: daemons.mosquitto.stop,
}

SERVICE_ARGUMENT = typer.Argument(None, help="One service; all of them when omitted.")


def _print(message: str) -> None:
    # Messages hold paths and addresses, never rich markup.
    console.print(message, markup=False)


def _address(settings: Settings, service: Service) -> str:
    if service is Service.postgres:
        return f"{settings.pg_host}:{settings.pg_port}"
    if service is Service.redis:
        return f"{settings.redis_host}:{settings.redis_port}"
    return f"{settings.mqtt_host}:{settings.mqtt_port}"


def _run(action: Callable[[Settings], None]) -> None:
    """Run an action with the settings; a DaemonError becomes exit code 1."""
    settings = settings_or_exit()
    try:
        action(settings)
    except daemons.DaemonError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The platform's own local PostgreSQL/TimescaleDB, Redis and Mosquitto.",
        no_args_is_help=True,
    )

    @group.command("start")
    def start_command(service: Service | None = SERVICE_ARGUMENT) -> None:
        """Start the services (idempotent): initialise on first use, wait until they answer."""
        if service is None:
            _run(lambda settings: daemons.start_all(settings, log=_print))
        else:
            _run(lambda settings: STARTS[service](settings, log=_print))

    @group.command("stop")
    def stop_command(service: Service | None = SERVICE_ARGUMENT) -> None:
        """Stop the services gracefully (idempotent) and wait until they have exited."""
        if service is None:
            _run(lambda settings: daemons.stop_all(settings, log=_print))
        else:
            _run(lambda settings: STOPS[service](settings, log=_print))

    @group.command("restart")
    def restart_command(service: Service | None = SERVICE_ARGUMENT) -> None:
        """Stop, then start the services (PostgreSQL with a fast shutdown)."""
        if service is None:
            def restart_all(settings: Settings) -> None:
                daemons.stop_all(settings, log=_print)
                daemons.start_all(settings, log=_print)

            _run(restart_all)
        elif service is Service.postgres:
            _run(lambda settings: daemons.postgres.restart(settings, log=_print))
        else:
            def restart_one(settings: Settings) -> None:
                STOPS[service](settings, log=_print)
                STARTS[service](settings, log=_print)

            _run(restart_one)

    @group.command("status")
    def status_command() -> None:
        """Show whether each service runs and answers, where, and where its data lives."""
        settings = settings_or_exit()
        state = daemons.status(settings)
        table = Table(title=f"Local services (data in {escape(str(settings.data_dir))})")
        table.add_column("service")
        table.add_column("address")
        table.add_column("state")
        for service in Service:
            running = state[service.value]
            table.add_row(
                service.value, _address(settings, service),
                "[green]running[/]" if running else "[red]stopped[/]",
            )
        console.print(table)

    app.add_typer(group, name="services")
