"""Export cursors as tokens: what they encode, and the tokens they refuse (no database)."""

from __future__ import annotations

import base64

import pytest

from hypervision.export.cursor import CursorError, Snapshot, decode, encode


def test_a_cursor_round_trips_its_snapshot() -> None:
    snapshot = Snapshot(1000, 1010, (1003, 1007))
    token = encode(snapshot)
    assert token.startswith("hv1.") and "=" not in token
    assert decode(token) == snapshot
    assert decode(f"  {token}\n") == snapshot
    assert decode(encode(Snapshot(5, 5))) == Snapshot(5, 5)


def test_a_snapshot_saw_what_had_committed_before_it() -> None:
    snapshot = Snapshot(1000, 1010, (1003, 1007))
    assert snapshot.saw(999) and snapshot.saw(1004)
    assert not snapshot.saw(1003) and not snapshot.saw(1010) and not snapshot.saw(2000)


@pytest.mark.parametrize("token", [
    "", "hv2.AAAA", "hv1.", "hv1.!!!!",
    "hv1." + base64.urlsafe_b64encode(b"1:2:.00000000").decode(),           # bad checksum
    encode(Snapshot(1000, 1010))[:-2],                                       # truncated
])
def test_a_malformed_or_damaged_cursor_is_refused(token: str) -> None:
    with pytest.raises(CursorError):
        decode(token)


@pytest.mark.parametrize("text", ["10:5:", "1:10:12", "1:10:0", "a:b:", "1:2:3:4"])
def test_an_inconsistent_snapshot_is_refused(text: str) -> None:
    with pytest.raises(CursorError):
        Snapshot.parse(text)
