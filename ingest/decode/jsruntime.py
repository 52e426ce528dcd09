"""Run vendors' JavaScript `decodeUplink(input)` codecs in V8 (mini-racer), safely and fast.

See ingest/decode/README.md ("JS codec runtime"). The rules:

1. V8 runs in a sandbox child process (ingest/decode/jssandbox.py), started on first use:
   nothing V8 exists in the worker, and nothing at import time (Celery prefork workers
   fork after importing). Each codec file keeps one long-lived, compiled context there.
2. A batch is decoded in ONE call into V8: a wrapper loops over a JSON array of inputs and
   returns one JSON string. Crossing into V8 costs hundreds of microseconds per call; the
   loop costs a few microseconds per uplink.
3. Limits: a time limit per batch and a V8 heap limit, enforced in the sandbox (a codec
   that loops or allocates fails its uplinks; the sandbox rebuilds the context and retries
   the rest one by one). A codec that throws fails its own uplink only.
4. A watchdog here covers what V8 cannot stop: when the sandbox exceeds its deadline or
   its memory budget (typed arrays live outside the V8 heap), or dies (fatal V8 OOM), it
   is killed and restarted and the batch is retried one uplink at a time, so that only
   the bad frames fail, each with its reason. The worker process is never at risk.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.decode.records import UplinkToDecode

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Open files of the sandbox process: Python's start-up, V8, the codec files being read.
SANDBOX_OPEN_FILES = 64


@dataclass(frozen=True, slots=True)
class JsResult:
    """One uplink decoded by a JS codec: its `data`, warnings, or the reason it failed."""

    data: Any
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of JS codecs."""

    batch_base_s: float = 0.25  # time limit of a batch call: base + per_item * size
    per_item_s: float = 0.005
    single_item_s: float = 0.1  # time limit when an uplink is retried alone
    max_memory: int = 128 * 1024 * 1024  # V8 heap of one codec context, in bytes
    sandbox_heap_mb: int = 256  # V8 old-space ceiling of the sandbox process
    sandbox_rss: int = 768 * 1024 * 1024  # the watchdog kills the sandbox above this RSS
    start_s: float = 10.0  # allowance for starting the sandbox process
    slack_s: float = 1.0  # allowance for the pipe and for compiling a codec

    def batch_timeout(self, size: int) -> float:
        return self.batch_base_s + self.per_item_s * size

    def deadline(self, size: int) -> float:
        """How long the watchdog waits for a reply: the sandbox's own limits plus slack."""
        return self.slack_s + self.batch_timeout(size) + self.single_item_s * size


class JsCodecError(Exception):
    """The codec file cannot be loaded (syntax error, endless top-level code...)."""


class SandboxDied(Exception):
    """The sandbox process died, missed its deadline or went over its memory budget."""


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [str(value)]


def _sandbox_limits() -> None:
    """Resource limits of the sandbox process, set between fork and exec: it writes no
    file and no core dump (which would hold its memory), and opens few files. Memory is
    bounded by V8's heap flag and the watchdog's RSS check, time by V8's own timeouts."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (SANDBOX_OPEN_FILES, SANDBOX_OPEN_FILES))


class Sandbox:
    """The child process running V8, with a watchdog on time, memory and death."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = os.getpid()
        self.restarts = 0
        self.fresh = False  # started but not yet answered: allow for Python and V8 start-up
        self._buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        # Nothing of the worker's environment (database and broker passwords): the sandbox
        # runs vendor code and needs only to find Python's modules.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self._buffer = b""
        return subprocess.Popen(
            [sys.executable, "-m", "ingest.decode.jssandbox", str(self.limits.sandbox_heap_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # V8's fatal-error dumps; the reply says what failed
            env=env,
            bufsize=0,
            preexec_fn=_sandbox_limits,
        )

    def _process(self) -> subprocess.Popen[bytes]:
        if self.owner != os.getpid():
            # Forked from the process that started the sandbox: that one is not ours.
            self.proc, self.owner = None, os.getpid()
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
            self.fresh = True
        return self.proc

    def kill(self) -> None:
        if self.proc is not None and self.owner == os.getpid():
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.restarts += 1
        self.proc = None

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def _read_line(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxDied("timeout")
            ready, _, _ = select.select([fd], [], [], min(left, 0.02))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise SandboxDied("crashed")
                self._buffer += chunk
            elif self._rss(proc.pid) > self.limits.sandbox_rss:
                raise SandboxDied("memory")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def request(
        self, header: dict[str, Any], items_json: str, deadline_s: float
    ) -> tuple[dict[str, Any], str]:
        """Send one request; return (reply header, results JSON). Raises SandboxDied."""
        proc = self._process()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(header).encode() + b"\n" + items_json.encode() + b"\n")
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise SandboxDied("crashed") from exc
        deadline = time.monotonic() + deadline_s + (self.limits.start_s if self.fresh else 0.0)
        try:
            reply = json.loads(self._read_line(proc, deadline))
            results = self._read_line(proc, deadline).decode()
        except SandboxDied:
            self.kill()
            raise
        self.fresh = False
        return reply, results


_SANDBOXES: dict[Limits, Sandbox] = {}
_SANDBOX_LOCK = threading.Lock()


def sandbox(limits: Limits) -> Sandbox:
    """The sandbox of this process for these limits (one per worker process)."""
    with _SANDBOX_LOCK:
        box = _SANDBOXES.get(limits)
        if box is None:
            box = _SANDBOXES[limits] = Sandbox(limits)
        return box


_DIED = {
    "timeout": "codec did not finish in time (sandbox restarted)",
    "memory": "codec exceeded the sandbox memory budget (sandbox restarted)",
    "crashed": "codec crashed the sandbox (sandbox restarted)",
}


class JsCodec:
    """One JS codec file, decoded in the sandbox with its own long-lived context."""

    def __init__(self, path: Path, limits: Limits | None = None) -> None:
        self.path = path.resolve()
        if not self.path.is_file():
            raise JsCodecError(f"{path}: no such file")
        self.limits = limits or Limits()
        self._lock = threading.Lock()

    @staticmethod
    def inputs(items: Sequence[UplinkToDecode]) -> list[dict[str, Any]]:
        """The wrapper's input records: bytes as numbers, port, variables, time in ms."""
        return [
            {
                "b": list(item.data),
                "f": item.f_port,
                "v": dict(item.variables),
                "t": item.recv_time.timestamp() * 1000.0,
            }
            for item in items
        ]

    def _header(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "codec": str(self.path),
            "batch_s": 0.0,
            "item_s": limits.single_item_s,
            "max_memory": limits.max_memory,
        }

    def _send(self, records: list[dict[str, Any]]) -> list[JsResult]:
        header = self._header()
        header["batch_s"] = self.limits.batch_timeout(len(records))
        box = sandbox(self.limits)
        reply, results = box.request(
            header, json.dumps(records, separators=(",", ":")), self.limits.deadline(len(records))
        )
        if not reply.get("ok"):
            raise JsCodecError(str(reply.get("error")))
        out = []
        for entry in json.loads(results):
            if "e" in entry:
                out.append(JsResult(None, [], entry["e"]))
                continue
            warnings, errors = _strings(entry.get("w")), _strings(entry.get("x"))
            if errors:
                out.append(JsResult(None, warnings, "codec errors: " + "; ".join(errors)))
            else:
                out.append(JsResult(entry.get("d"), warnings, None))
        if len(out) != len(records):
            raise JsCodecError("the sandbox returned a wrong number of results")
        return out

    def decode_batch(self, items: Sequence[UplinkToDecode]) -> list[JsResult]:
        """Decode uplinks in one V8 call; same length and order; never raises for an item.

        Raises JsCodecError only when the codec file itself cannot be loaded.
        """
        if not items:
            return []
        records = self.inputs(items)
        with self._lock:
            try:
                return self._send(records)
            except SandboxDied:
                pass
            # The sandbox died under this batch: find the culprits one uplink at a time.
            results = []
            for record in records:
                try:
                    results.extend(self._send([record]))
                except SandboxDied as exc:
                    results.append(JsResult(None, [], _DIED.get(str(exc), str(exc))))
            return results
