"""Printable label sheets and the transparency commands, decoded as a phone would."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
from pathlib import Path

import pypdfium2
import pytest
import typer
import zxingcpp
from PIL import Image
from typer.testing import CliRunner

from hypervision import qr
from hypervision.commands import labels as labels_commands
from hypervision.commands import public as public_commands
from hypervision.public import labels
from hypervision.public.records import PublicDevice
from tests.public.conftest import Civic
from tests.public.test_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.services

IN_SERVICE = ("c1c1c1c1c1c10001", "c1c1c1c1c1c10002", "c1c1c1c1c1c10003")


def cli() -> typer.Typer:
    app = typer.Typer()
    labels_commands.register(app)
    public_commands.register(app)
    return app


def run(*args: str) -> str:
    result = CliRunner().invoke(cli(), list(args))
    assert result.exit_code == 0, result.output
    return result.output


def decoded(image: Image.Image) -> list[str]:
    return sorted(b.text for b in zxingcpp.read_barcodes(image)
                  if b.format == zxingcpp.BarcodeFormat.QRCode)


def pdf_codes(data: bytes) -> list[list[str]]:
    """The QR codes found on each page of a PDF, rendered at 200 dpi."""
    document = pypdfium2.PdfDocument(data)
    return [decoded(page.render(scale=200 / 72).to_pil()) for page in document]


def urls(civic: Civic, euis: tuple[str, ...] = IN_SERVICE) -> list[str]:
    return sorted(qr.page_url(civic.settings, civic.public_ids[e]) for e in euis)


def test_the_pdf_label_sheet_holds_one_readable_code_per_device_in_service(
    civic: Civic, tmp_path: Path
) -> None:
    out = tmp_path / "labels.pdf"
    assert "3 label(s)" in " ".join(run("labels", "civic", "-o", str(out)).split())
    assert pdf_codes(out.read_bytes()) == [urls(civic)]


def test_a_sheet_holds_21_labels_and_more_go_on_the_next_page(civic: Civic) -> None:
    template = PublicDevice("x", "civic", "Capteur", True, "m", "V", "M", "air", "", [],
                            "indoor-air", "", "", None, None, None, None, None)
    devices = [dataclasses.replace(template, public_id=f"{i:016x}", name=f"Capteur n° {i}")
               for i in range(23)]
    found = labels.labels_for(devices, civic.settings)
    pages = pdf_codes(labels.pdf(found, "test"))
    assert [len(p) for p in pages] == [21, 2]
    assert sorted(url for page in pages for url in page) == sorted(x.url for x in found)


def test_the_html_label_sheet_prints_codes_that_decode_to_the_pages(
    civic: Civic, tmp_path: Path
) -> None:
    out = tmp_path / "labels.html"
    run("labels", "civic", "-o", str(out), "--lang", "en")
    html = out.read_text()
    assert "@page { size: A4; margin: 0; }" in html and "Scan: what this sensor" in html
    assert "<script" not in html and "http" not in html.split("<body>")[0].replace(
        "http://www.w3.org", "")
    shot = tmp_path / "sheet.png"
    assert CHROMIUM
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=794,1123", "--force-device-scale-factor=2", f"--screenshot={shot}",
         out.as_uri()],
        check=True, capture_output=True, timeout=60,
    )
    assert decoded(Image.open(shot)) == urls(civic)


def test_the_qr_command_writes_a_code_for_a_dev_eui(civic: Civic, tmp_path: Path) -> None:
    png, svg = tmp_path / "code.png", tmp_path / "code.svg"
    run("qr", "C1:C1:C1:C1:C1:C1:00:02", "-o", str(png))
    run("qr", "c1c1c1c1c1c10002", "-o", str(svg))
    expected = urls(civic, ("c1c1c1c1c1c10002",))
    assert decoded(Image.open(io.BytesIO(png.read_bytes()))) == expected
    assert svg.read_bytes().startswith(b"<svg") and expected[0].encode() in svg.read_bytes()
    result = CliRunner().invoke(cli(), ["qr", "0000000000000000", "-o", str(png)])
    assert result.exit_code == 1


def test_the_register_command_prints_json_or_writes_a_standalone_page(
    civic: Civic, tmp_path: Path
) -> None:
    register = json.loads(run("register", "civic"))
    assert [p["data_class"] for p in register["processing"]] == [
        "water-consumption", "indoor-air", "waste-fill"]
    page = tmp_path / "register.html"
    run("register", "civic", "--html", "-o", str(page))
    html = page.read_text()
    assert "<style>" in html and 'font-family: system-ui' in html and "<link" not in html
    assert f'href="{civic.settings.public_base_url}/m/civic/register.json"' in html
    assert CliRunner().invoke(cli(), ["register", "nobody"]).exit_code == 1
