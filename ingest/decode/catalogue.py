"""The device catalogue: load model files, pick each model's codec, decode batches.

`Catalogue.decode_batch` is what the pipeline calls; it never raises for a bad uplink. See
ingest/decode/README.md for the semantics (platform codec first, ChirpStack's object
compared or used as a fallback when the model declares no codec).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from ingest.decode.errors import CatalogueError, DecodeError
from ingest.decode.mapping import CompiledMapping, disagreement
from ingest.decode.records import Decoded, UplinkToDecode
from ingest.decode.spec import DeviceModel, load_model_file

if TYPE_CHECKING:
    from ingest.decode.jsruntime import JsCodec, JsResult

MODELS_DIR = Path(__file__).parent / "models"
BUILT_IN = "built-in"
OPERATOR = "operator"
JS_DIR = Path(__file__).parent / "codecs" / "js"

BuiltinDecoder = Callable[[int, bytes], dict[str, Any]]


def load_builtin(module: str, variant: str | None = None) -> BuiltinDecoder:
    """The `decode(f_port, data)` function of ingest/decode/codecs/<module>.py.

    `module` may be written `module:variant`. A family module (one vendor frame format for
    several models) lists its models in `VARIANTS` and takes `variant=` as a keyword; an
    unknown variant raises LookupError.
    """
    if variant is None and ":" in module:
        module, variant = module.split(":", 1)
    loaded = importlib.import_module(f"ingest.decode.codecs.{module}")
    if variant is None:
        decode: BuiltinDecoder = loaded.decode
        return decode
    variants = getattr(loaded, "VARIANTS", {})
    if variant not in variants:
        known = ", ".join(sorted(variants)) or "none"
        raise LookupError(f"{module} has no variant {variant!r} (variants: {known})")
    return functools.partial(loaded.decode, variant=variant)


def file_sha256(path: Path) -> str:
    """SHA-256 of a codec file, recorded in operator model files (codec.sha256)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(slots=True)
class _Entry:
    """A model with everything decode_batch needs, resolved once at load time."""

    model: DeviceModel
    mapping: CompiledMapping
    codec: str | None
    codec_version: str | None
    builtin: BuiltinDecoder | None
    js_path: Path | None
    origin: str


class Catalogue:
    """Device models by id, with their compiled mappings and codecs."""

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        self._models = MappingProxyType({k: e.model for k, e in entries.items()})
        # JS codecs are compiled lazily, one long-lived context per file: Celery prefork
        # workers fork after import, and a V8 isolate must not cross a fork.
        self._js: dict[Path, JsCodec] = {}

    @classmethod
    def load(cls, *dirs: Path) -> Catalogue:
        """Load every *.yaml of the given folders (default: ingest/decode/models/).

        Raises CatalogueError listing every invalid file, field and problem at once.
        """
        folders = [Path(d) for d in dirs] or [MODELS_DIR]
        return cls._load([(folder, BUILT_IN if folder == MODELS_DIR else OPERATOR)
                          for folder in folders])

    @classmethod
    def load_with_operator(cls, operator_dir: Path | None) -> Catalogue:
        """The built-in models and those of the operator's catalogue folder, if it exists.

        An operator model may not reuse a built-in model's id. See ingest/decode/README.md,
        "Operator catalogue".
        """
        folders = [(MODELS_DIR, BUILT_IN)]
        if operator_dir is not None and Path(operator_dir).is_dir():
            folders.append((Path(operator_dir), OPERATOR))
        return cls._load(folders)

    @classmethod
    def _load(cls, folders: list[tuple[Path, str]]) -> Catalogue:
        entries: dict[str, _Entry] = {}
        problems: list[str] = []
        for folder, origin in folders:
            files = sorted(folder.glob("*.yaml"))
            if not folder.is_dir():
                problems.append(f"{folder}: not a folder")
            for path in files:
                try:
                    model = load_model_file(path)
                    entry = cls._entry(model, path, origin)
                except CatalogueError as exc:
                    problems.extend(exc.problems)
                    continue
                if model.id in entries:
                    problems.append(f"{path}: id: model {model.id!r} is defined twice")
                    continue
                entries[model.id] = entry
        if problems:
            raise CatalogueError(problems)
        return cls(entries)

    @staticmethod
    def _entry(model: DeviceModel, path: Path, origin: str = BUILT_IN) -> _Entry:
        builtin: BuiltinDecoder | None = None
        js_path: Path | None = None
        if model.codec is not None and model.codec.builtin is not None:
            try:
                builtin = load_builtin(model.codec.builtin, model.codec.variant)
            except (ImportError, AttributeError, LookupError) as exc:
                module = f"ingest.decode.codecs.{model.codec.builtin}"
                problem = f"{path}: codec.builtin: no decoder {module} ({exc})"
                raise CatalogueError([problem]) from exc
        elif model.codec is not None and model.codec.js is not None:
            rel = model.codec.js
            base = path.parent if rel.startswith(("./", "../")) else JS_DIR
            js_path = (base / rel).resolve()
            if not js_path.is_file():
                raise CatalogueError([f"{path}: codec.js: file {js_path} not found"])
            expected = model.codec.sha256
            if expected is not None and file_sha256(js_path) != expected:
                raise CatalogueError([
                    f"{path}: codec.sha256: {js_path.name} changed since version "
                    f"{model.codec.version} was recorded; import it again with "
                    "`hypervision models add` so that it gets a new version"
                ])
        return _Entry(
            model=model,
            mapping=CompiledMapping(model),
            codec=model.codec_name if model.codec else None,
            codec_version=model.codec_version,
            builtin=builtin,
            js_path=js_path,
            origin=origin,
        )

    @property
    def models(self) -> Mapping[str, DeviceModel]:
        return self._models

    def get(self, model_id: str) -> DeviceModel:
        """The model with this id; KeyError if unknown."""
        return self._entries[model_id].model

    def origin(self, model_id: str) -> str:
        """Where the model comes from: "built-in" (this package) or "operator" (catalogue/)."""
        return self._entries[model_id].origin

    def js_codec(self, path: Path) -> JsCodec:
        """The long-lived runtime of one JS codec file, created on first use."""
        codec = self._js.get(path)
        if codec is None:
            from ingest.decode.jsruntime import JsCodec

            codec = self._js[path] = JsCodec(path)
        return codec

    def decode_one(self, item: UplinkToDecode) -> Decoded:
        return self.decode_batch([item])[0]

    def codec_output(
        self, item: UplinkToDecode
    ) -> tuple[dict[str, Any] | None, list[str], str | None]:
        """What the model's platform codec returns for one uplink: (data, warnings, error).

        For installers checking a frame (`hypervision decode`); the pipeline uses
        decode_batch. Data is None for a model without a platform codec.
        """
        entry = self._entries[item.model_id]
        if entry.builtin is not None:
            try:
                return entry.builtin(item.f_port, item.data), [], None
            except DecodeError as exc:
                return None, [], _short(exc)
            except Exception as exc:
                return None, [], f"codec crashed: {_short(exc)}"
        if entry.js_path is not None:
            (outcome,) = self._run_js(entry.js_path, [item])
            return outcome.data, outcome.warnings, outcome.error
        return None, [], None

    def decode_batch(self, items: Sequence[UplinkToDecode]) -> list[Decoded]:
        """Decode uplinks; same length and order. Never raises for a bad item.

        1. Built-in codecs and ChirpStack objects are handled item by item.
        2. Items of JS models are grouped per codec and decoded in one call per codec.
        3. Each codec output goes through the model's mapping; ChirpStack's object, when
           present, goes through the same mapping and differences are recorded.
        """
        results: list[Decoded | None] = [None] * len(items)
        js_groups: dict[Path, list[int]] = {}
        entries = self._entries
        for i, item in enumerate(items):
            entry = entries.get(item.model_id)
            if entry is None:
                results[i] = Decoded([], None, None, "unknown model", [], None)
            elif entry.builtin is not None:
                try:
                    output = entry.builtin(item.f_port, item.data)
                except DecodeError as exc:
                    results[i] = self._failed(entry, _short(exc))
                    continue
                except Exception as exc:  # a decoder bug must fail one uplink, not the batch
                    results[i] = self._failed(entry, f"codec crashed: {_short(exc)}")
                    continue
                results[i] = self._finish(entry, item, output, [])
            elif entry.js_path is not None:
                js_groups.setdefault(entry.js_path, []).append(i)
            else:
                results[i] = self._from_object(entry, item)
        for js_path, indexes in js_groups.items():
            outcomes = self._run_js(js_path, [items[i] for i in indexes])
            for i, outcome in zip(indexes, outcomes, strict=True):
                entry = entries[items[i].model_id]
                if outcome.error is not None:
                    results[i] = self._failed(entry, outcome.error, outcome.warnings)
                elif not isinstance(outcome.data, dict):
                    results[i] = self._failed(entry, "codec returned no data object")
                else:
                    results[i] = self._finish(entry, items[i], outcome.data, outcome.warnings)
        # Every branch above filled its slot: no None is left.
        return cast(list[Decoded], results)

    def _run_js(self, js_path: Path, items: list[UplinkToDecode]) -> list[JsResult]:
        try:
            return self.js_codec(js_path).decode_batch(items)
        except Exception as exc:  # the runtime itself failed (e.g. the file does not compile)
            from ingest.decode.jsruntime import JsResult

            return [JsResult(None, [], f"codec runtime failed: {_short(exc)}")] * len(items)

    @staticmethod
    def _failed(entry: _Entry, error: str, warnings: list[str] | None = None) -> Decoded:
        return Decoded([], entry.codec, entry.codec_version, error, list(warnings or []), None)

    @staticmethod
    def _finish(
        entry: _Entry, item: UplinkToDecode, output: dict[str, Any], warnings: list[str]
    ) -> Decoded:
        readings, more = entry.mapping.apply(output, item.recv_time, item.variables)
        diff = None
        if item.object is not None:
            theirs, _ = entry.mapping.apply(item.object, item.recv_time, item.variables)
            diff = disagreement(readings, theirs)
        return Decoded(readings, entry.codec, entry.codec_version, None, warnings + more, diff)

    @staticmethod
    def _from_object(entry: _Entry, item: UplinkToDecode) -> Decoded:
        if item.object is None:
            return Decoded(
                [], "chirpstack-object", None, "no codec and no ChirpStack object", [], None
            )
        readings, warnings = entry.mapping.apply(item.object, item.recv_time, item.variables)
        return Decoded(readings, "chirpstack-object", None, None, warnings, None)
