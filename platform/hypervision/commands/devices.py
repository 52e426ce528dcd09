"""`hypervision devices import`: add a vendor's delivery (CSV/XLSX) to a member's tenant
file and its AppKeys to the keys file (hypervision.device_import). It shows the plan, then
asks before writing (`--yes` does not ask, `--dry-run` only shows the plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hypervision import device_import
from hypervision.commands.common import (
    MemberArg,
    Yes,
    catalogue_or_exit,
    confirm_or_exit,
    console,
    fail,
    settings_or_exit,
)

devices_app = typer.Typer(help="Members' devices: import a vendor's delivery file.",
                          no_args_is_help=True)


@devices_app.command("import")
def import_devices(
    member: MemberArg,
    file: Annotated[Path, typer.Argument(help="The vendor's CSV or XLSX file.")],
    model: Annotated[str, typer.Option(help="Device model id of every row.")],
    column: Annotated[list[str] | None, typer.Option(
        "--column", help="FIELD=HEADER (repeatable); fields: " + ", ".join(device_import.FIELDS)
    )] = None,
    purpose: Annotated[str, typer.Option(help="Why these devices are installed (public).")] = "",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only show the plan; write nothing.")] = False,
    yes: Yes = False,
) -> None:
    """Show the devices and keys a delivery file adds to tenants/MEMBER.yaml and the keys
    file, then write both files."""
    settings = settings_or_exit()
    catalogue = catalogue_or_exit(settings)
    if model not in catalogue.models:
        raise fail(f"unknown model {model!r}; see `hypervision models`")
    overrides: dict[str, str] = {}
    for item in column or []:
        name, sep, header = item.partition("=")
        if not sep:
            raise fail(f"--column expects FIELD=HEADER, got {item!r}")
        overrides[name.strip()] = header.strip()
    keys_file = settings.chirpstack_keys_file
    try:
        rows = device_import.read_rows(file)
        columns = device_import.Columns.resolve(list(rows[0]), overrides)
        result = device_import.plan(rows, columns, member, catalogue.get(model),
                                    settings.tenants_dir, keys_file, purpose)
    except device_import.DeviceImportError as exc:
        raise fail(str(exc)) from None
    mapped = ", ".join(f"{k}←{v!r}" for k, v in columns.by_field.items())
    console.print(f"columns: {mapped}")
    for step in result.steps:
        extra = step.device.get("variables", {})
        detail = f" {extra}" if extra else ""
        console.print(f"+ line {step.line}: {step.device['dev_eui']} {step.device['name']!r}"
                      f" ({model}){detail}", markup=False)
    if result.problems:
        for problem in result.problems:
            console.print(f"x {problem}", markup=False)
        raise fail(f"{len(result.problems)} problem(s) in {file.name}: nothing written")
    console.print(f"= {len(result.steps)} devices for tenants/{member}.yaml, "
                  f"{len(result.steps)} AppKeys for the keys file")
    if dry_run:
        console.print("plan only: run again without --dry-run to write both files")
        return
    if keys_file is None:
        raise fail("HV_CHIRPSTACK_KEYS_FILE is not set: the AppKeys need a keys file")
    confirm_or_exit(yes, f"rewrite tenants/{member}.yaml and {keys_file} with these devices")
    try:
        device_import.apply(result, settings.tenants_dir, keys_file)
    except device_import.DeviceImportError as exc:
        raise fail(str(exc)) from None
    console.print(f"~ written: tenants/{member}.yaml and {keys_file}; next: "
                  "`hypervision tenants apply`, then `hypervision chirpstack apply`")


def register(app: typer.Typer) -> None:
    app.add_typer(devices_app, name="devices")
