"""`hypervision devices import`: a vendor's delivery file becomes devices and keys.

Meters and sensors arrive by the hundred with the vendor's file of identities and keys
(CSV or XLSX: DevEUI, JoinEUI/AppEUI, AppKey, serial number, sometimes the meter number).

1. Read the rows (`read_rows`): the first row holds the column names; the first sheet of a
   workbook is read.
2. Map columns to fields (`Columns`): found by usual header names ("DevEUI", "AppKey",
   "AppEUI", "Serial"...) unless the operator names them (`--column field=Header`).
3. Plan (`plan`): one `+` step per row, or one problem per bad row (malformed DevEUI,
   JoinEUI or AppKey, DevEUI twice in the file, already declared by a member or already in
   the keys file with another key). Any problem refuses the whole file: nothing is written.
4. Apply (`apply`): the plan is computed again; the keys file (a secret, mode 0600, outside
   the repository) gets the AppKeys, then the member's tenant file gets the devices,
   appended to its `devices:` list so that its comments and layout stay as written. Each
   file is written through a temporary file and renamed: never half a file. The new tenant
   file is validated before it replaces the old one.

Where row values go: name (from `name`, else "<model> <serial>"), location (`lat`, `lon`,
`address`), and `variables`: `serial`, `meter_id` and `join_eui` (kept with the device;
the codecs ignore variables they do not declare).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hypervision.settings import REPO_ROOT
from hypervision.tenancy.spec import SpecError, TenantSpec, check_together, load_dir
from ingest.decode import DeviceModel

HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
FIELDS = ("dev_eui", "join_eui", "app_key", "serial", "meter_id", "name", "lat", "lon",
          "address")
# Usual header spellings in vendors' files, compared without case, spaces, "_" or "-".
HEADERS = {
    "dev_eui": ("deveui", "eui", "deviceeui", "deveuiid"),
    "join_eui": ("joineui", "appeui", "applicationeui"),
    "app_key": ("appkey", "applicationkey"),
    "serial": ("serial", "sn", "serialnumber", "numerodeserie", "numérodesérie"),
    "meter_id": ("meter", "meterid", "meternumber", "compteur", "numerocompteur",
                 "numérocompteur", "numérodecompteur"),
    "name": ("name", "nom", "devicename"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "longitude"),
    "address": ("address", "adresse"),
}
DATA_CLASSES = {"water": "water-consumption", "waste": "waste-fill", "air": "indoor-air",
                "energy": "energy", "lighting": "lighting"}


class DeviceImportError(Exception):
    """The file cannot be imported; the message says why (one line per bad row)."""


def _fold(header: str) -> str:
    return re.sub(r"[\s_\-./]+", "", header.strip().lower())


def _hex(value: str) -> str:
    return re.sub(r"[\s:\-]", "", value).lower()


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV (`,` or `;`, UTF-8 with or without BOM) or XLSX file, as text."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
        table = [["" if v is None else str(v).strip() for v in row]
                 for row in sheet.iter_rows(values_only=True)]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeviceImportError(f"{path}: cannot read: {exc}") from exc
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;\t")
        table = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    table = [row for row in table if any(row)]
    if len(table) < 2:
        raise DeviceImportError(f"{path}: no rows under the header line")
    header = table[0]
    return [dict(zip(header, row + [""] * (len(header) - len(row)), strict=False))
            for row in table[1:]]


@dataclass
class Columns:
    """Which header of the file holds each field."""

    by_field: dict[str, str]

    @classmethod
    def resolve(cls, headers: list[str], overrides: dict[str, str]) -> Columns:
        unknown = sorted(set(overrides) - set(FIELDS))
        if unknown:
            raise DeviceImportError(f"--column: unknown field(s) {', '.join(unknown)}; "
                                    f"fields are {', '.join(FIELDS)}")
        found: dict[str, str] = {}
        for name, header in overrides.items():
            if header not in headers:
                raise DeviceImportError(f"--column {name}={header}: no such column "
                                        f"(columns: {', '.join(headers)})")
            found[name] = header
        folded = {_fold(h): h for h in headers}
        for name, spellings in HEADERS.items():
            if name not in found:
                match = next((folded[s] for s in spellings if s in folded), None)
                if match is not None:
                    found[name] = match
        missing = [f for f in ("dev_eui", "app_key") if f not in found]
        if missing:
            raise DeviceImportError(
                f"no column for {', '.join(missing)}; name it with --column "
                f"{missing[0]}=HEADER (columns: {', '.join(headers)})")
        return cls(found)

    def get(self, row: dict[str, str], name: str) -> str:
        header = self.by_field.get(name)
        return row.get(header, "").strip() if header else ""


@dataclass
class Step:
    """One device to add: the tenant-file entry and its AppKey."""

    line: int
    device: dict[str, Any]
    app_key: str


@dataclass
class Plan:
    member: str
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _existing_keys(path: Path | None) -> dict[str, str]:
    if path is None or not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k).strip().lower(): str(v).strip().lower() for k, v in raw.items()}


def plan(
    rows: list[dict[str, str]],
    columns: Columns,
    member: str,
    model: DeviceModel,
    tenants_dir: Path,
    keys_file: Path | None,
    purpose: str = "",
) -> Plan:
    """The devices to add, or the problems of every bad row (line numbers as in the file)."""
    result = Plan(member)
    try:
        specs = load_dir(tenants_dir)
    except SpecError as exc:
        raise DeviceImportError(f"the tenant files do not load: {exc}") from exc
    if not any(s.name == member for s in specs):
        raise DeviceImportError(f"no member {member!r} in {tenants_dir}")
    declared = {d.dev_eui: s.name for s in specs for d in s.devices}
    keys = _existing_keys(keys_file)
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=2):
        where = f"line {n}"
        eui = _hex(columns.get(row, "dev_eui"))
        key = _hex(columns.get(row, "app_key"))
        join = _hex(columns.get(row, "join_eui"))
        problems = []
        if not HEX16.match(eui):
            problems.append(f"DevEUI {columns.get(row, 'dev_eui')!r} is not 16 hex digits")
        if not HEX32.match(key):
            # The key itself is never printed: it is a secret.
            problems.append("AppKey is not 32 hex digits")
        if join and not HEX16.match(join):
            problems.append(f"JoinEUI {columns.get(row, 'join_eui')!r} is not 16 hex digits")
        if eui in seen:
            problems.append(f"DevEUI {eui} already on line {seen[eui]}")
        elif eui in declared:
            problems.append(f"DevEUI {eui} is already declared by member {declared[eui]}")
        elif eui in keys and keys[eui] != key:
            problems.append(f"DevEUI {eui} already has another AppKey in the keys file")
        lat, lon = columns.get(row, "lat"), columns.get(row, "lon")
        location: dict[str, Any] | None = None
        if lat or lon:
            try:
                location = {"lat": float(lat.replace(",", ".")),
                            "lon": float(lon.replace(",", "."))}
            except ValueError:
                problems.append(f"location {lat!r}, {lon!r} is not two numbers")
        if problems:
            result.problems.extend(f"{where}: {p}" for p in problems)
            seen.setdefault(eui, n)
            continue
        seen[eui] = n
        serial, meter = columns.get(row, "serial"), columns.get(row, "meter_id")
        name = columns.get(row, "name") or f"{model.model} {serial or eui[-6:]}"
        device: dict[str, Any] = {"dev_eui": eui, "name": name, "model": model.id}
        if purpose:
            device["purpose"] = purpose
        device["data_class"] = DATA_CLASSES[model.category]
        if location is not None:
            address = columns.get(row, "address")
            if address:
                location["address"] = address
            device["location"] = location
        variables = {k: v for k, v in (("serial", serial), ("meter_id", meter),
                                       ("join_eui", join)) if v}
        if variables:
            device["variables"] = variables
        result.steps.append(Step(n, device, key))
    return result


def _write(path: Path, text: str, mode: int | None = None) -> None:
    """Write through a temporary file in the same folder and rename it: all or nothing."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode if mode is not None else
                 (stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _with_devices(text: str, entries: list[dict[str, Any]]) -> str:
    """The tenant file's text with `entries` appended to its `devices:` list."""
    block = yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=100)
    block = "".join(f"  {line}\n" for line in block.splitlines())
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^devices\s*:", line)), None)
    if start is None:
        return text + ("" if text.endswith("\n") else "\n") + "devices:\n" + block
    if re.match(r"^devices\s*:\s*\[\s*\]\s*$", lines[start]):
        lines[start] = "devices:\n"
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t-#"):
        end += 1
    # Comment or blank lines just before the next key belong to that key.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    if end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end]) + block + "".join(lines[end:])


def apply(result: Plan, tenants_dir: Path, keys_file: Path) -> None:
    """Write the keys, then the devices; validate the new tenant file before it lands."""
    if result.problems:
        raise DeviceImportError("the file has problems; nothing was written")
    tenant_path = tenants_dir / f"{result.member}.yaml"
    new_text = _with_devices(tenant_path.read_text(encoding="utf-8"),
                             [s.device for s in result.steps])
    try:
        new_spec = TenantSpec.model_validate(yaml.safe_load(new_text))
        others = [s for s in load_dir(tenants_dir) if s.name != result.member]
        check_together([*others, new_spec])
    except (SpecError, ValueError) as exc:
        raise DeviceImportError(f"the tenant file would not be valid: {exc}") from exc
    if keys_file.resolve().is_relative_to(REPO_ROOT):
        raise DeviceImportError(f"{keys_file}: the keys file is inside the repository; "
                                "keep AppKeys outside it")
    known = _existing_keys(keys_file)
    keys_text = keys_file.read_text(encoding="utf-8") if keys_file.is_file() else ""
    if keys_text and not keys_text.endswith("\n"):
        keys_text += "\n"
    keys_text += "".join(f'"{s.device["dev_eui"]}": "{s.app_key}"\n' for s in result.steps
                         if s.device["dev_eui"] not in known)
    _write(keys_file, keys_text, mode=0o600)
    _write(tenant_path, new_text)
