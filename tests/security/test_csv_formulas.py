"""Finding 8: a CSV cell that a spreadsheet would read as a formula is written inert."""

from __future__ import annotations

import csv
import io

import pytest

from hypervision.export.formats import Column, CsvEncoder
from hypervision.usage import UsageDay, to_csv


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0",
                                  "-2+3", "@SUM(A1)", "\tlead"])
def test_it_neutralises_csv_text_cells_that_start_like_a_formula(text: str) -> None:
    enc = CsvEncoder([Column("device", "text"), Column("value", "float")])
    data = b"".join([*enc.feed([(text, -1.5)]), *enc.finish()])
    row = _cells(data)[1]
    assert row[0] == "'" + text
    # Numbers stay numbers: a negative reading is not a formula.
    assert row[1] == "-1.5"


def test_a_cell_starting_with_a_carriage_return_is_neutralised_too() -> None:
    enc = CsvEncoder([Column("device", "text")])
    data = b"".join([*enc.feed([("\r=1+1",)]), *enc.finish()])
    assert data == b"device\n'\r=1+1\n"


def test_it_leaves_ordinary_text_cells_as_they_are() -> None:
    enc = CsvEncoder([Column("device", "text")])
    data = b"".join([*enc.feed([("Compteur mairie",), (None,)]), *enc.finish()])
    assert _cells(data)[1:] == [["Compteur mairie"], [""]]


def test_the_usage_csv_neutralises_formula_cells_too() -> None:
    from datetime import date

    row = UsageDay(date(2026, 1, 1), "=cmd", 1, 0, 0, 0, None)
    assert to_csv([row]).splitlines()[1].startswith("2026-01-01,'=cmd,")
