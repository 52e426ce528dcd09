"""`hypervision models` and `hypervision decode`: the device catalogue for operators.

`models` lists the catalogue (built-in models of ingest/decode/models/ and the operator's
of HV_CATALOGUE_DIR) with the number of devices of each in the tenant files; `models add`
imports a vendor's device (hypervision.model_import); `models check` checks the operator
models' stored examples again; `decode` runs a model's codec on a frame given in hex, so
that an installer can check a new device on the spot. See ingest/decode/README.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hypervision import model_import
from hypervision.commands.common import Yes, catalogue_or_exit, confirm_or_exit, settings_or_exit
from hypervision.tenancy.spec import SpecError, load_dir
from ingest.decode import Catalogue, UplinkToDecode

models_app = typer.Typer(
    help="The device catalogue: list models, add an operator model, check them.",
    invoke_without_command=True,
)


def _catalogue() -> Catalogue:
    return catalogue_or_exit()


def _devices_per_model() -> dict[str, int]:
    settings = settings_or_exit()
    counts: dict[str, int] = {}
    try:
        specs = load_dir(settings.tenants_dir) if settings.tenants_dir.is_dir() else []
    except SpecError as exc:
        typer.echo(f"warning: tenant files not counted: {exc}", err=True)
        specs = []
    for spec in specs:
        for device in spec.devices:
            counts[device.model] = counts.get(device.model, 0) + 1
    return counts


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the device models: origin (built-in or operator), codec, version, devices."""
    if ctx.invoked_subcommand is not None:
        return
    catalogue = _catalogue()
    devices = _devices_per_model()
    table = Table(title="Device models")
    for column in ("id", "vendor", "model", "category", "origin", "codec", "version",
                   "devices", "metrics"):
        table.add_column(column, overflow="fold")
    for model_id in sorted(catalogue.models):
        model = catalogue.models[model_id]
        metrics = ", ".join(dict.fromkeys(m.metric for m in model.metrics))
        table.add_row(
            model.id,
            model.vendor,
            model.model,
            model.category,
            catalogue.origin(model_id),
            model.codec_name,
            model.codec_version or "-",
            str(devices.get(model_id, 0)),
            metrics,
        )
    Console(width=220).print(table)


@models_app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="TTN device-repository vendor folder or device "
                                              "file, or a ChirpStack device-profile export")],
    category: Annotated[str, typer.Option(help="water, waste, air, energy or lighting")],
    metric: Annotated[list[str], typer.Option(
        "--metric", help="METRIC=PATH[:UNIT] from the codec output (repeatable), e.g. "
                         "water.index=volume:m3")],
    device: Annotated[str | None, typer.Option(help="device id in a TTN vendor folder")] = None,
    model_id: Annotated[str | None, typer.Option("--id", help="model id (default "
                                                 "vendor-model)")] = None,
    vendor: Annotated[str | None, typer.Option(help="vendor name (default: from the "
                                               "source)")] = None,
    interval: Annotated[int, typer.Option(help="typical seconds between uplinks")] = 900,
    yes: Yes = False,
) -> None:
    """Import a vendor's device as an operator model, once its examples decode as declared."""
    settings = settings_or_exit()
    try:
        candidate = model_import.read_source(
            path, device=device, vendor=vendor, model_id=model_id, category=category,
            metrics=metric, interval=interval)
    except model_import.ModelImportError as exc:
        raise _fail(str(exc)) from None
    problems = model_import.check(candidate)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise _fail(f"{candidate.id} refused: its examples do not decode as declared:\n{lines}")
    typer.echo(f"  {len(candidate.examples)} example frames decode as the vendor declares")
    try:
        step = model_import.plan(settings.catalogue_dir, candidate, _catalogue())
    except model_import.ModelImportError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{step.symbol} {step.model_id} version {step.version}: {step.detail}")
    if step.symbol == "=":
        return
    confirm_or_exit(yes, f"write {step.model_id} version {step.version} into"
                         f" {settings.catalogue_dir}")
    try:
        model_import.apply(settings.catalogue_dir, candidate, step)
    except model_import.ModelImportError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"= written; workers use it within {settings.catalogue_reload_interval:g} s")


@models_app.command("check")
def check() -> None:
    """Decode every operator model's stored vendor examples again; exit 1 on a problem."""
    settings = settings_or_exit()
    catalogue_or_exit(settings)
    results = model_import.check_folder(settings.catalogue_dir)
    bad = {k: v for k, v in results.items() if v}
    for model_id in sorted(results):
        typer.echo(f"{'x' if model_id in bad else '='} {model_id}")
        for problem in bad.get(model_id, []):
            typer.echo(f"    {problem}")
    if bad:
        raise typer.Exit(1)


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
    app.add_typer(models_app, name="models")
    app.command("decode")(decode)
