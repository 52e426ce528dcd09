"""Where the time goes: py-spy's raw (collapsed) stacks, summarised per pipeline stage.

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;... count`,
root first, each frame `function (file:line)`. A sample is given to the stage of the
innermost frame that belongs to a known stage: a `json.loads` called from the ChirpStack
parser counts as JSON, a psycopg call made from ingest/store.py as the database. Frames of
the standard library that belong to no stage (struct, threading, ...) pass the sample up
to their caller. Idle samples are not recorded (py-spy's default), so the shares are of
the time each process spent on a CPU.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# Stage -> prefixes of a frame's file as py-spy prints it (relative to its sys.path entry).
STAGES: dict[str, tuple[str, ...]] = {
    "mqtt": ("paho/",),
    "json_parse_validate": ("ingest/chirpstack.py", "ingest/chirpstack_schema.py",
                            "pydantic/", "pydantic_core/"),
    "decode": ("ingest/decode/",),
    "celery_kombu": ("celery/", "kombu/", "billiard/", "msgpack/", "redis/", "vine/",
                     "amqp/"),
    "database": ("psycopg/", "psycopg_binary/", "psycopg_c/", "psycopg_pool/"),
}
# Standard library helpers that belong to a stage only through their caller: json.loads
# from our code is JSON work, uuid4() from Celery is Celery's.
WEAK: dict[str, tuple[str, ...]] = {
    "json_parse_validate": ("json/", "uuid.py", "base64.py", "_strptime.py"),
}
OWN = ("ingest/", "hypervision/")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _match(path: str, table: dict[str, tuple[str, ...]]) -> str | None:
    for stage, prefixes in table.items():
        if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
            return stage
    return None


def stage_of(frames: list[str]) -> tuple[str, str]:
    """(stage, deciding frame) of one stack, frames root first.

    From the innermost frame outwards, the first frame of a stage or of our own code
    decides: a stage's frame gives its stage; our own code gives "other" (the pipeline's
    own logic: building rows, batching), unless a standard-library helper of a stage
    (json, uuid, base64) was seen below it, which it called.
    """
    weak: str | None = None
    for frame in reversed(frames):
        match = _FRAME.match(frame.strip())
        path = match["file"] if match else frame
        stage = _match(path, STAGES)
        if stage is not None:
            return stage, _short(frame)
        if path.startswith(OWN):
            return (weak, _short(frame)) if weak else ("other", _short(frame))
        if weak is None:
            weak = _match(path, WEAK)
    return weak or "other", _short(frames[-1]) if frames else "?"


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()[:80]
    path = match["file"]
    for root in ("/site-packages/", "/work/main/", "/lib/python3"):
        if root in path:
            path = path.split(root, 1)[1]
    return f"{match['func']} ({path})"


def summarise(path: Path) -> dict[str, object]:
    """Shares of samples per stage, and the heaviest functions of `other`."""
    stages: Counter[str] = Counter()
    others: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        stage, where = stage_of(frames)
        stages[stage] += count
        if stage == "other":
            others[where] += count
        total += count
    return {
        "samples": total,
        "share_pct": {s: round(100 * stages[s] / total, 1) if total else 0.0
                      for s in (*STAGES, "other")},
        "other_top": [{"where": w, "pct": round(100 * n / total, 1)}
                      for w, n in others.most_common(8)] if total else [],
    }
