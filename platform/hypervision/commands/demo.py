"""`hypervision demo`: the platform's main job on its embedded default (see hypervision.demo)."""

from __future__ import annotations

from typing import Annotated

import typer

from hypervision.commands.common import console, fail, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        rate: Annotated[float, typer.Option(help="Simulated uplinks per second.")] = 50.0,
        duration: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
        history_days: Annotated[float | None, typer.Option(
            help="Days of history to backfill first (HV_DEMO_HISTORY_DAYS, default 30).",
            min=0, max=366)] = None,
        stop_all: Annotated[bool, typer.Option(
            "--stop-all", help="Also stop Superset and the services at the end.")] = False,
    ) -> None:
        """Start everything, backfill days of simulated history through the real pipeline,
        then feed live ChirpStack events and show a summary until Ctrl-C."""
        from hypervision import demo as demo_job
        from hypervision.daemons import DaemonError
        from hypervision.superset import SupersetError

        settings = settings_or_exit()
        try:
            final = demo_job.run(settings, rate, duration, console, stop_all=stop_all,
                                 history_days=history_days)
        except (DaemonError, SupersetError) as exc:
            raise fail(str(exc)) from None
        if final.stored == 0:
            raise typer.Exit(code=1)
