"""`hypervision models add`: a vendor's device description becomes an operator model.

Reads a device from a folder of The Things Network device repository (vendor/<vendor>/ with
`<device>.yaml`, `<codec>.yaml` and the JS codec) or from a ChirpStack device-profile
export (JSON or YAML with `payloadCodecScript`), checks every example frame the vendor
gives, and writes the model into the operator's catalogue folder (HV_CATALOGUE_DIR):

    <catalogue>/<id>.yaml              the model file (ingest/decode/README.md)
    <catalogue>/codecs/<id>.v<N>.js    the codec of version N (older versions are kept)
    <catalogue>/codecs/<id>.LICENSE    the licence found next to the vendor's files, if any
    <catalogue>/examples/<id>.yaml     the vendor's examples, checked again by `models check`

1. Read the source into a `Candidate` (model fields, codec file, examples, licence).
2. Check it (`check`): the model file must validate, every example must give the vendor's
   output (or its errors) through the platform's JS sandbox, and every declared metric must
   be read from at least one example without warnings. Any problem refuses the model.
3. Plan (`plan`): new model (+), new version because the codec or mapping changed (~), or
   unchanged (=). Operator versions are 1, 2, 3...; decoded uplinks record the version, and
   `hypervision reprocess MEMBER --model ID` decodes older uplinks again.
4. Apply (`apply`): each file is written to a temporary file and renamed, the model file
   last, so that a worker reloading the catalogue never sees half a model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ingest.decode import Catalogue, CatalogueError, UplinkToDecode
from ingest.decode.catalogue import file_sha256
from ingest.decode.jsruntime import JsCodec
from ingest.decode.mapping import CompiledMapping
from ingest.decode.spec import DeviceModel

RECV_TIME = datetime(2024, 1, 1, tzinfo=UTC)
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING")


class ModelImportError(Exception):
    """The source cannot be imported; the message lists every problem, one per line."""


@dataclass
class Example:
    """One vendor example: a frame and what the vendor's codec returns for it."""

    description: str
    f_port: int
    data: bytes
    output: dict[str, Any]

    def as_yaml(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "input": {"fPort": self.f_port, "bytes": list(self.data)},
            "output": self.output,
        }


@dataclass
class Candidate:
    """A model read from a vendor source, before it joins the catalogue."""

    fields: dict[str, Any]
    codec_source: str
    examples: list[Example]
    source: str
    licence: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.fields["id"])


@dataclass
class Plan:
    """What `apply` will write: symbol (+ ~ =), the version, and the reason."""

    symbol: str
    model_id: str
    version: str
    detail: str


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def parse_metric(option: str) -> dict[str, Any]:
    """`metric=path[:unit]` (e.g. `water.index=volume:m3`) into a metrics entry."""
    metric, sep, rest = option.partition("=")
    if not sep or not metric or not rest:
        raise ModelImportError(f"--metric expects METRIC=PATH[:UNIT], got {option!r}")
    path, _, unit = rest.partition(":")
    entry: dict[str, Any] = {"metric": metric.strip(), "path": path.strip()}
    if unit:
        entry["unit"] = unit.strip()
    return entry


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelImportError(f"{path}: cannot read: {exc}") from exc


def _examples(raw: Any, where: str) -> list[Example]:
    examples = []
    for n, item in enumerate(raw or []):
        try:
            frame = item["input"]
            examples.append(Example(
                str(item.get("description") or f"example {n + 1}"),
                int(frame["fPort"]),
                bytes(int(b) & 0xFF for b in frame["bytes"]),
                dict(item.get("output") or {}),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelImportError(f"{where}: example {n + 1} is malformed ({exc})") from exc
    return examples


def _find_licence(folder: Path) -> Path | None:
    """A licence file in the folder or up to three folders above (a repository's root)."""
    for candidate in [folder, *list(folder.parents)[:3]]:
        for name in LICENCE_NAMES:
            if (candidate / name).is_file():
                return candidate / name
    return None


def read_ttn(path: Path, device: str | None) -> tuple[dict[str, Any], str, list[Example], str]:
    """A device of a TTN device-repository vendor folder: (fields, codec, examples, source).

    `path` is the vendor folder (then `device` names the device when there are several) or
    the device's own YAML file.
    """
    if path.is_file():
        folder, device = path.parent, path.stem
    else:
        folder = path
        if device is None:
            index = _read_yaml(folder / "index.yaml") if (folder / "index.yaml").is_file() else {}
            devices = list((index or {}).get("endDevices") or [])
            if len(devices) != 1:
                listed = ", ".join(devices) or "none listed in index.yaml"
                raise ModelImportError(f"{folder}: give --device, one of: {listed}")
            device = devices[0]
    definition = _read_yaml(folder / f"{device}.yaml")
    if not isinstance(definition, dict):
        raise ModelImportError(f"{folder / f'{device}.yaml'}: not a TTN device definition")
    codec_ids: set[str] = {
        str(profile["codec"])
        for firmware in definition.get("firmwareVersions") or []
        for profile in (firmware.get("profiles") or {}).values()
        if isinstance(profile, dict) and profile.get("codec")
    }
    if len(codec_ids) != 1:
        raise ModelImportError(f"{folder / f'{device}.yaml'}: expected one codec across its "
                           f"profiles, found {sorted(codec_ids) or 'none'}")
    codec_id = codec_ids.pop()
    codec = _read_yaml(folder / f"{codec_id}.yaml") or {}
    decoder = codec.get("uplinkDecoder") or {}
    if not decoder.get("fileName"):
        raise ModelImportError(f"{folder / f'{codec_id}.yaml'}: no uplinkDecoder.fileName")
    js = folder / decoder["fileName"]
    try:
        source = js.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelImportError(f"{js}: cannot read the codec: {exc}") from exc
    fields = {
        "model": str(definition.get("name") or device),
        "description": str(definition.get("description") or definition.get("name") or device),
        "documentation": [u for u in (definition.get("productURL"), definition.get("dataSheetURL"))
                          if u],
    }
    examples = _examples(decoder.get("examples"), str(folder / f"{codec_id}.yaml"))
    return fields, source, examples, f"TTN device repository {folder.name}/{device}"


def read_chirpstack(path: Path) -> tuple[dict[str, Any], str, list[Example], str]:
    """A ChirpStack device-profile export (JSON or YAML, the API's DeviceProfile).

    The codec is `payloadCodecScript`; the examples come from an `examples` list in the
    same file or from `<file>.examples.yaml` next to it, in the TTN format
    (`{description, input: {fPort, bytes}, output: {data | errors}}`).
    """
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ModelImportError(f"{path}: cannot read the device profile: {exc}") from exc
    profile = raw.get("deviceProfile", raw) if isinstance(raw, dict) else None
    if not isinstance(profile, dict) or not profile.get("payloadCodecScript"):
        raise ModelImportError(f"{path}: no payloadCodecScript (a JS codec) in the device profile")
    runtime = str(profile.get("payloadCodecRuntime", "JS"))
    if runtime not in ("JS", "2"):
        raise ModelImportError(f"{path}: payloadCodecRuntime {runtime} is not a JS codec")
    raw_examples = raw.get("examples") if isinstance(raw, dict) else None
    sidecar = path.with_name(path.stem + ".examples.yaml")
    if raw_examples is None and sidecar.is_file():
        raw_examples = (_read_yaml(sidecar) or {}).get("examples")
    fields = {
        "model": str(profile.get("name") or path.stem),
        "description": str(profile.get("description") or profile.get("name") or path.stem),
        "documentation": [],
    }
    examples = _examples(raw_examples, str(path))
    return fields, str(profile["payloadCodecScript"]), examples, f"ChirpStack profile {path.name}"


def read_source(
    path: Path,
    *,
    device: str | None,
    vendor: str | None,
    model_id: str | None,
    category: str,
    metrics: list[str],
    interval: int,
) -> Candidate:
    """Read a TTN folder/device file or a ChirpStack export into a Candidate."""
    if not path.exists():
        raise ModelImportError(f"{path}: no such file or folder")
    is_profile = path.is_file() and (
        path.suffix == ".json" or "payloadCodecScript" in path.read_text(encoding="utf-8")
    )
    if is_profile:
        fields, source, examples, origin = read_chirpstack(path)
        default_vendor = vendor or str(fields["model"]).split()[0]
    else:
        fields, source, examples, origin = read_ttn(path, device)
        folder = path.parent if path.is_file() else path
        default_vendor = vendor or folder.name.replace("-", " ").title()
    if not metrics:
        raise ModelImportError("give at least one --metric METRIC=PATH[:UNIT]: which values of the "
                           "codec output become which canonical metrics")
    fields = {
        "version": "v1",
        "kind": "device-model",
        "id": model_id or slug(f"{default_vendor} {fields['model']}"),
        "vendor": default_vendor,
        "model": fields["model"],
        "category": category,
        "description": fields["description"],
        "documentation": fields["documentation"],
        "typical_interval_s": interval,
        "metrics": [parse_metric(m) for m in metrics],
    }
    licence = _find_licence(path.parent if path.is_file() else path)
    return Candidate(fields, source, examples, origin, licence)


def _same(expected: Any, got: Any) -> bool:
    """JSON equality with floats compared to 1e-9 (V8 and Python print them alike)."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected == got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(v, got[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(
            _same(a, b) for a, b in zip(expected, got, strict=True)
        )
    return bool(expected == got)


def _model_with(candidate: Candidate, js_name: str, version: str, sha: str) -> dict[str, Any]:
    fields = dict(candidate.fields)
    fields["codec"] = {"js": f"./codecs/{js_name}", "version": version, "sha256": sha}
    return fields


def check(candidate: Candidate) -> list[str]:
    """Every reason to refuse the candidate; empty when its examples decode as declared."""
    problems: list[str] = []
    if not candidate.examples:
        return ["the source gives no example frame: a model is only accepted once the "
                "vendor's own examples decode as declared"]
    with tempfile.TemporaryDirectory(prefix="hv-model-") as tmp:
        js = Path(tmp) / "codecs" / "candidate.js"
        js.parent.mkdir()
        js.write_text(candidate.codec_source, encoding="utf-8")
        raw = _model_with(candidate, js.name, "1", file_sha256(js))
        try:
            model = DeviceModel.model_validate(raw)
        except ValidationError as exc:
            return [f"model: {'.'.join(str(p) for p in e['loc'])}: "
                    f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        items = [UplinkToDecode(model.id, ex.f_port, ex.data, None, RECV_TIME, {})
                 for ex in candidate.examples]
        try:
            results = JsCodec(js).decode_batch(items)
        except Exception as exc:  # the codec file does not even load
            return [f"codec: cannot run: {exc}"]
    mapping = CompiledMapping(model)
    read: set[int] = set()
    for example, result in zip(candidate.examples, results, strict=True):
        name = f"example {example.description!r} (fPort {example.f_port}, {example.data.hex()})"
        expected_errors = example.output.get("errors")
        if expected_errors:
            if result.error is None:
                problems.append(f"{name}: the vendor expects errors {expected_errors}, "
                                f"the codec returned {result.data}")
            continue
        if result.error is not None:
            problems.append(f"{name}: {result.error}")
            continue
        expected = example.output.get("data")
        if expected is not None and not _same(expected, result.data):
            problems.append(f"{name}: the codec returned {json.dumps(result.data)}, the vendor "
                            f"declares {json.dumps(expected)}")
            continue
        readings, warnings = mapping.apply(result.data or {}, RECV_TIME, {})
        problems.extend(f"{name}: {w}" for w in warnings)
        for n, entry in enumerate(model.metrics):
            if any(r.metric == entry.metric for r in readings):
                read.add(n)
    for n, entry in enumerate(model.metrics):
        if n not in read:
            problems.append(f"metric {entry.metric} (path {entry.path}) is read from no example: "
                            "check the path against the codec output")
    return problems


def _current(catalogue_dir: Path, model_id: str) -> dict[str, Any] | None:
    path = catalogue_dir / f"{model_id}.yaml"
    if not path.is_file():
        return None
    raw = _read_yaml(path)
    return raw if isinstance(raw, dict) else None


def plan(catalogue_dir: Path, candidate: Candidate, builtin: Catalogue) -> Plan:
    """+ new model, ~ new version (codec or mapping changed), = unchanged."""
    if candidate.id in builtin.models and builtin.origin(candidate.id) == "built-in":
        raise ModelImportError(f"{candidate.id} is a built-in model: choose another id with --id")
    current = _current(catalogue_dir, candidate.id)
    if current is None:
        return Plan("+", candidate.id, "1", f"new operator model ({candidate.source})")
    codec = current.get("codec") or {}
    old_version = str(codec.get("version", "0"))
    sha = hashlib.sha256(candidate.codec_source.encode("utf-8")).hexdigest()
    same_codec = codec.get("sha256") == sha
    same_fields = all(current.get(k) == v for k, v in candidate.fields.items())
    if same_codec and same_fields:
        return Plan("=", candidate.id, old_version, "unchanged")
    version = str(int(old_version) + 1) if old_version.isdigit() else f"{old_version}.1"
    what = "codec" if not same_codec else "model file"
    return Plan("~", candidate.id, version,
                f"{what} changed: version {old_version} → {version}; `hypervision reprocess "
                f"MEMBER --model {candidate.id}` decodes earlier uplinks again")


def _write(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply(catalogue_dir: Path, candidate: Candidate, step: Plan) -> None:
    """Write the planned version into the catalogue folder (nothing for `=`)."""
    if step.symbol == "=":
        return
    js_name = f"{candidate.id}.v{step.version}.js"
    _write(catalogue_dir / "codecs" / js_name, candidate.codec_source)
    if candidate.licence is not None:
        _write(catalogue_dir / "codecs" / f"{candidate.id}.LICENSE",
               candidate.licence.read_text(encoding="utf-8", errors="replace"))
    _write(catalogue_dir / "examples" / f"{candidate.id}.yaml", yaml.safe_dump(
        {"source": candidate.source, "examples": [e.as_yaml() for e in candidate.examples]},
        allow_unicode=True, sort_keys=False))
    sha = file_sha256(catalogue_dir / "codecs" / js_name)
    model = _model_with(candidate, js_name, step.version, sha)
    header = f"# Imported by `hypervision models add` from {candidate.source}.\n"
    _write(catalogue_dir / f"{candidate.id}.yaml",
           header + yaml.safe_dump(model, allow_unicode=True, sort_keys=False))
    # The whole catalogue must still load (e.g. no id clash with another operator model).
    try:
        Catalogue.load_with_operator(catalogue_dir)
    except CatalogueError as exc:
        raise ModelImportError(f"the catalogue no longer loads:\n{exc}") from exc


def check_folder(catalogue_dir: Path) -> dict[str, list[str]]:
    """Check the stored examples of every operator model again: {model id: problems}."""
    found: dict[str, list[str]] = {}
    for path in sorted(catalogue_dir.glob("*.yaml")):
        raw = _read_yaml(path)
        examples_file = catalogue_dir / "examples" / f"{path.stem}.yaml"
        if not isinstance(raw, dict) or not examples_file.is_file():
            found[path.stem] = ["no examples file"]
            continue
        codec = raw.get("codec") or {}
        js = (path.parent / str(codec.get("js", ""))).resolve()
        fields = {k: v for k, v in raw.items() if k != "codec"}
        stored = _read_yaml(examples_file) or {}
        candidate = Candidate(fields, js.read_text(encoding="utf-8") if js.is_file() else "",
                              _examples(stored.get("examples"), str(examples_file)),
                              str(stored.get("source", "")))
        found[path.stem] = check(candidate)
    return found
