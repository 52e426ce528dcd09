"""Export cursors as tokens: what they encode, and the tokens they refuse (no database)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from hypervision.export.cursor import Cursor, CursorError, Snapshot, decode, encode

INSTANCE = "0b6f5a3c-9d7e-4c1a-8f2b-3e4d5c6b7a81"


def test_a_cursor_round_trips_its_snapshot_and_instance() -> None:
    snapshot = Snapshot(1000, 1010, (1003, 1007))
    token = encode(snapshot, INSTANCE)
    assert token.startswith("hv2.") and "=" not in token
    assert decode(token) == Cursor(snapshot, INSTANCE)
    assert decode(f"  {token}\n") == Cursor(snapshot, INSTANCE)
    assert decode(encode(Snapshot(5, 5), INSTANCE)).snapshot == Snapshot(5, 5)
    with pytest.raises(ValueError, match="instance"):
        encode(snapshot, "not-a-uuid")


def test_a_first_form_cursor_is_read_without_an_instance() -> None:
    body = "1000:1010:1003,1007"
    check = hashlib.sha256(body.encode()).hexdigest()[:8]
    token = "hv1." + base64.urlsafe_b64encode(f"{body}.{check}".encode()).decode().rstrip("=")
    assert decode(token) == Cursor(Snapshot(1000, 1010, (1003, 1007)), None)


def test_a_snapshot_saw_what_had_committed_before_it() -> None:
    snapshot = Snapshot(1000, 1010, (1003, 1007))
    assert snapshot.saw(999) and snapshot.saw(1004)
    assert not snapshot.saw(1003) and not snapshot.saw(1010) and not snapshot.saw(2000)


@pytest.mark.parametrize("token", [
    "", "hv2.AAAA", "hv1.", "hv1.!!!!", "hv3.AAAA",
    "hv1." + base64.urlsafe_b64encode(b"1:2:.00000000").decode(),           # bad checksum
    encode(Snapshot(1000, 1010), INSTANCE)[:-2],                             # truncated
    # A well-formed checksum over a body without an instance: not an hv2 cursor.
    "hv2." + base64.urlsafe_b64encode(
        f"1:2:.{hashlib.sha256(b'1:2:').hexdigest()[:8]}".encode()).decode(),
])
def test_a_malformed_or_damaged_cursor_is_refused(token: str) -> None:
    with pytest.raises(CursorError):
        decode(token)


@pytest.mark.parametrize("text", ["10:5:", "1:10:12", "1:10:0", "a:b:", "1:2:3:4"])
def test_an_inconsistent_snapshot_is_refused(text: str) -> None:
    with pytest.raises(CursorError):
        Snapshot.parse(text)
