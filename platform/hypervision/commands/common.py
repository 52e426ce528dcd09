"""What every command group shares: settings, the console, domain errors as exit code 1."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from hypervision.settings import Settings, get_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str) -> typer.Exit:
    """Print a domain error and return the Exit to raise (exit code 1)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HV_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise fail(f"configuration: {problems} (see .env.example)") from None
