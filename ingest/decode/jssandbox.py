"""The JS codec sandbox: a child process that owns every V8 context of one worker.

Started by ingest/decode/jsruntime.py (`python -m ingest.decode.jssandbox HEAP_MB`); see
ingest/decode/README.md. V8 lives here and never in the worker itself, because some
codec mistakes cannot be stopped from inside V8: one huge allocation in a C++ builtin
(`new Array(2**27).fill(1.5)`) ignores the time limit and ends in a fatal V8 abort. When
that happens only this process dies; the worker notices and starts a new one.

Protocol, over stdin/stdout, two lines per message:
  request: {"codec": "/path/file.js", "batch_s": .., "item_s": .., "max_memory": ..}
           then the JSON array of inputs [{"b": [bytes], "f": port, "v": {..}, "t": ms}]
  reply:   {"ok": true} then the JSON array of results [{"d","w","x"} or {"e"}]
           or {"ok": false, "error": "why the codec cannot be loaded"} then "[]"

Within one request:
1. The whole batch is decoded by one call into V8 under the batch time limit.
2. If that call hits the time or memory limit, the context is rebuilt and every input is
   retried alone under the per-item limit; an input that fails again gets its reason.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

from py_mini_racer import (
    DEFAULT_V8_FLAGS,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
    init_mini_racer,
)
from py_mini_racer._exc import MiniRacerBaseException

# Installed before the codec, so that a codec replacing JSON.stringify or Date cannot
# break it. Each item is serialised inside its own try block: an unserialisable result
# (a cycle, a BigInt) fails that item only.
# Codec files kept compiled at once (each V8 context holds three file descriptors).
MAX_CONTEXTS = 12

WRAPPER = r"""
var __hv = (function (stringify, DateCtor, global) {
  function one(item) {
    var decode = global.decodeUplink;
    if (typeof decode !== "function") {
      return stringify({e: "the codec defines no decodeUplink function"});
    }
    try {
      var r = decode({bytes: item.b, fPort: item.f, variables: item.v,
                      recvTime: new DateCtor(item.t)});
      if (r === null || typeof r !== "object") {
        return stringify({e: "decodeUplink returned no object"});
      }
      return stringify({d: r.data, w: r.warnings, x: r.errors});
    } catch (err) {
      var text;
      try { text = String(err && err.message !== undefined ? err.message : err); }
      catch (e2) { text = "unprintable exception"; }
      return stringify({e: "codec threw: " + text});
    }
  }
  return function (items) {
    var out = new Array(items.length);
    for (var i = 0; i < items.length; i++) { out[i] = one(items[i]); }
    return "[" + out.join(",") + "]";
  };
})(JSON.stringify, Date, globalThis);
"""


class LoadError(Exception):
    """The codec file cannot be compiled or its top-level code does not finish."""


class CodecContext:
    """One codec file compiled in its own long-lived V8 context."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.source = Path(path).read_text(encoding="utf-8")
        self.ctx: MiniRacer | None = None

    def context(self, max_memory: int, load_s: float) -> MiniRacer:
        if self.ctx is None:
            ctx = MiniRacer()
            ctx.set_hard_memory_limit(max_memory)
            ctx.eval(WRAPPER)
            try:
                ctx.eval(self.source, timeout_sec=load_s)
            except JSTimeoutException as exc:
                raise LoadError(f"{Path(self.path).name}: top-level code did not finish") from exc
            except MiniRacerBaseException as exc:
                raise LoadError(f"{Path(self.path).name}: {str(exc).strip()[:300]}") from exc
            self.ctx = ctx
        return self.ctx

    def discard(self) -> None:
        """Close a context that hit a limit (or is evicted); a fresh one is compiled on
        next use. Closing matters: each V8 context holds three file descriptors until then,
        and the sandbox may open few (jsruntime.SANDBOX_OPEN_FILES)."""
        if self.ctx is not None:
            self.ctx.close()
        self.ctx = None

    def run(self, items_json: str, timeout_s: float, max_memory: int) -> str:
        ctx = self.context(max_memory, max(1.0, timeout_s))
        out = ctx.eval(f"__hv({items_json})", timeout_sec=timeout_s)
        if not isinstance(out, str):
            raise ValueError("the batch wrapper returned no string")
        return out

    def decode(self, items_json: str, req: dict[str, Any]) -> str:
        max_memory = int(req["max_memory"])
        try:
            return self.run(items_json, float(req["batch_s"]), max_memory)
        except (MiniRacerBaseException, ValueError):
            self.discard()
        item_s = float(req["item_s"])
        results: list[str] = []
        for item in json.loads(items_json):
            try:
                results.append(self.run(json.dumps([item]), item_s, max_memory)[1:-1])
            except LoadError:
                raise
            except JSTimeoutException:
                self.discard()
                results.append(json.dumps({"e": f"codec timed out after {item_s * 1000:.0f} ms"}))
            except JSOOMException:
                self.discard()
                mb = max_memory // (1024 * 1024)
                results.append(json.dumps({"e": f"codec exceeded the {mb} MB memory limit"}))
            except (MiniRacerBaseException, ValueError) as exc:
                self.discard()
                results.append(json.dumps({"e": f"codec runtime failed: {str(exc)[:300]}"}))
        return "[" + ",".join(results) + "]"


def main() -> None:
    heap_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    # A bounded V8 heap makes a runaway codec end this process quickly instead of growing
    # it to gigabytes first.
    init_mini_racer(flags=(*DEFAULT_V8_FLAGS, f"--max-old-space-size={heap_mb}"))
    # The codecs compiled, least recently used first. Only MAX_CONTEXTS stay compiled: an
    # operator's catalogue gains a codec file per version, and a context per file kept for
    # ever would exhaust the sandbox's file descriptors (three per V8 context).
    codecs: OrderedDict[str, CodecContext] = OrderedDict()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header, items = stdin.readline(), stdin.readline()
        if not header or not items:
            return
        req = json.loads(header)
        path = req["codec"]
        try:
            codec = codecs.get(path)
            if codec is None:
                codec = codecs[path] = CodecContext(path)
                while len(codecs) > MAX_CONTEXTS:
                    codecs.popitem(last=False)[1].discard()
            codecs.move_to_end(path)
            reply = json.dumps({"ok": True}) + "\n" + codec.decode(items.decode(), req)
        except (LoadError, OSError) as exc:
            failed = codecs.pop(path, None)
            if failed is not None:
                failed.discard()
            reply = json.dumps({"ok": False, "error": str(exc)}) + "\n[]"
        stdout.write(reply.encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
