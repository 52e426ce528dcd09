"""`hypervision models` and `hypervision decode`: the device catalogue for operators.

`models` lists the catalogue (ingest/decode/models/); `decode` runs a model's codec on a
frame given in hex, so that an installer can check a new device on the spot. See
ingest/decode/README.md for the catalogue and the mapping rules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ingest.decode import Catalogue, CatalogueError, UplinkToDecode


def _catalogue() -> Catalogue:
    try:
        return Catalogue.load()
    except CatalogueError as exc:
        typer.echo(f"error: invalid device model files:\n{exc}", err=True)
        raise typer.Exit(1) from exc


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def models() -> None:
    """List the device models of the catalogue with their codec and metrics."""
    catalogue = _catalogue()
    table = Table(title="Device models")
    for column in ("id", "vendor", "model", "category", "codec", "version", "metrics"):
        table.add_column(column, overflow="fold")
    for model_id in sorted(catalogue.models):
        model = catalogue.models[model_id]
        metrics = ", ".join(dict.fromkeys(m.metric for m in model.metrics))
        table.add_row(
            model.id,
            model.vendor,
            model.model,
            model.category,
            model.codec_name,
            model.codec_version or "-",
            metrics,
        )
    Console(width=200).print(table)


def decode(
    model_id: Annotated[str, typer.Argument(metavar="MODEL", help="device model id")],
    frame: Annotated[str, typer.Argument(metavar="HEX", help="frame payload in hexadecimal")],
    fport: Annotated[int, typer.Option("--fport", help="LoRaWAN fPort of the frame")],
    var: Annotated[
        list[str] | None, typer.Option("--var", help="device variable k=v (repeatable)")
    ] = None,
    chirpstack_object: Annotated[
        str | None,
        typer.Option("--object", help="ChirpStack's decoded object (JSON), to compare or map"),
    ] = None,
) -> None:
    """Decode one frame with MODEL's codec; print the codec output and readings as JSON."""
    catalogue = _catalogue()
    if model_id not in catalogue.models:
        raise _fail(f"unknown model {model_id!r}; see `hypervision models`")
    try:
        data = bytes.fromhex(frame.replace(" ", "").replace(":", ""))
    except ValueError as exc:
        raise _fail(f"HEX is not hexadecimal: {exc}") from exc
    variables: dict[str, str] = {}
    for pair in var or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--var expects k=v, got {pair!r}")
        variables[key] = value
    obj: dict | None = None
    if chirpstack_object is not None:
        try:
            obj = json.loads(chirpstack_object)
        except ValueError as exc:
            raise _fail(f"--object is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise _fail("--object must be a JSON object")
    item = UplinkToDecode(model_id, fport, data, obj, datetime.now(UTC), variables)
    output, codec_warnings, codec_error = catalogue.codec_output(item)
    (decoded,) = catalogue.decode_batch([item])
    report: dict[str, Any] = {
        "model": model_id,
        "codec": decoded.codec,
        "codec_version": decoded.codec_version,
        "f_port": fport,
        "output": output,
        "readings": [
            {
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "time": r.time.isoformat() if r.time else None,
            }
            for r in decoded.readings
        ],
        "warnings": decoded.warnings or codec_warnings,
        "error": decoded.error or codec_error,
        "disagreement": decoded.disagreement,
    }
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    if report["error"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the catalogue commands to the `hypervision` application."""
    app.command("models")(models)
    app.command("decode")(decode)
