"""`hypervision api`: serve the platform API with uvicorn.

See platform/hypervision/api/README.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hypervision.commands.common import console, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: Annotated[str | None, typer.Option(help="Listen address (HV_API_HOST).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (HV_API_PORT).")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    ) -> None:
        """Serve the API (OpenAPI document at /api/v1/openapi.json)."""
        import uvicorn

        settings = settings_or_exit()
        host = host or settings.api_host
        port = port or settings.api_port
        console.print(f"API on http://{host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json)")
        uvicorn.run("hypervision.api.main:app_from_settings", factory=True, host=host,
                    port=port, workers=workers, proxy_headers=True,
                    forwarded_allow_ips=settings.api_forwarded_allow_ips,
                    server_header=False, log_level="info")
