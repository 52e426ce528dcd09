"""`hypervision demo`: the platform's main job on its embedded default (see hypervision.demo)."""

from __future__ import annotations

from typing import Annotated

import typer

from hypervision.commands.common import console, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        rate: Annotated[float, typer.Option(help="Simulated uplinks per second.")] = 50.0,
        duration: Annotated[float | None, typer.Option(help="Stop after N seconds.")] = None,
        stop_all: Annotated[bool, typer.Option(
            "--stop-all", help="Also stop Superset and the services at the end.")] = False,
    ) -> None:
        """Start everything, feed simulated ChirpStack events through the real pipeline and
        show a live summary until Ctrl-C."""
        from hypervision import demo as demo_job

        settings = settings_or_exit()
        final = demo_job.run(settings, rate, duration, console, stop_all=stop_all)
        if final.stored == 0:
            raise typer.Exit(code=1)
