"""Downlink encoders: the Milesight WS558 frames against the vendor's documentation."""

from __future__ import annotations

from typing import Any

import pytest

from hypervision.chirpstack.encoders import WS558, EncodeError, encoder_for


def test_the_ws558_encoder_writes_the_vendors_frames() -> None:
    def frame(command: str, **params: Any) -> tuple[int, str]:
        encoded, _ = WS558.encode(command, params)
        return encoded.f_port, encoded.data.hex()

    # Reporting interval 20 min: ff03b004 (the user guide's example).
    assert frame("reporting_interval", seconds=1200) == (85, "ff03b004")
    assert frame("reboot") == (85, "ff10ff")
    # Channel 0x08: which circuits are addressed, then their new state, one bit each.
    assert frame("switch", circuits=[1], state="on") == (85, "080101")
    assert frame("switch", circuits="6,7", state="on") == (85, "086060")
    assert frame("switch", circuits=[2, 8], state="off") == (85, "088200")
    assert frame("switch", circuits="all", state="off") == (85, "08ff00")


def test_the_ws558_switch_frame_reads_back_as_the_state_the_decoder_reports() -> None:
    from ingest.decode.codecs import milesight_ws558

    encoded, _ = WS558.encode("switch", {"circuits": "6,7", "state": "on"})
    # The device reports its switches on the same channel with type 0x31.
    report = milesight_ws558.decode(85, bytes([0x08, 0x31]) + encoded.data[1:])
    assert [n for n in range(1, 9) if report[f"switch_{n}"] == "on"] == [6, 7]


@pytest.mark.parametrize(("command", "params", "message"), [
    ("dim", {}, "has no command 'dim'"),
    ("switch", {"circuits": [9], "state": "on"}, "circuits are numbered 1 to 8"),
    ("switch", {"circuits": [1], "state": "half"}, "state"),
    ("switch", {"circuits": [1], "state": "on", "colour": "red"}, "colour"),
    ("reporting_interval", {"seconds": 5}, "greater than or equal to 60"),
])
def test_an_unknown_command_or_bad_parameters_are_refused(
    command: str, params: dict[str, Any], message: str,
) -> None:
    with pytest.raises(EncodeError, match=message):
        WS558.encode(command, params)


def test_a_model_without_an_encoder_says_which_models_have_one() -> None:
    with pytest.raises(EncodeError, match=r"milesight-am103 has no downlink encoder.*ws558"):
        encoder_for("milesight-am103")
