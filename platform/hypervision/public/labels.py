"""Printable A4 sheets of device labels for installers: QR code, name, short purpose, URL.

Two outputs of the same layout (3 x 7 labels of 70 x 42.4 mm, a common self-adhesive
sheet): HTML with print CSS (open, print at 100 %), or PDF drawn with fpdf2, the QR code
as vector squares so that it prints sharp at any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import WrapMode
from markupsafe import Markup

from hypervision import processing_register as reg
from hypervision import qr
from hypervision.processing_register import Lang
from hypervision.public.records import PublicDevice
from hypervision.public.render import render
from hypervision.settings import Settings

COLUMNS, ROWS = 3, 7
WIDTH_MM, HEIGHT_MM = 70.0, 297.0 / 7
QR_MM = 30.0
PURPOSE_CHARS = 90
CALL: dict[Lang, str] = {
    "fr": "Scannez : ce que mesure ce capteur, pourquoi, qui contacter.",
    "en": "Scan: what this sensor measures, why, whom to contact.",
}


@dataclass(frozen=True)
class Label:
    name: str
    purpose: str
    url: str


def short(text: str, limit: int = PURPOSE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def labels_for(devices: Sequence[PublicDevice], settings: Settings, lang: Lang = "fr"
               ) -> list[Label]:
    return [
        Label(
            name=d.name,
            purpose=short(d.purpose or reg.pick(reg.class_facts(d.data_class).title, lang)),
            url=qr.page_url(settings, d.public_id),
        )
        for d in devices
    ]


def _sheets(labels: Sequence[Label]) -> list[list[Label]]:
    per = COLUMNS * ROWS
    return [list(labels[i:i + per]) for i in range(0, len(labels), per)]


def html(labels: Sequence[Label], title: str, lang: Lang = "fr") -> str:
    sheets = [
        [{"name": x.name, "purpose": x.purpose, "url": x.url,
          "svg": Markup(qr.svg(x.url, title=x.url, scalable=True).decode())}  # segno's own markup
         for x in sheet]
        for sheet in _sheets(labels)
    ]
    return render("labels.html", lang, title=title, sheets=sheets, call=CALL[lang],
                  columns=COLUMNS, rows=ROWS, width_mm=WIDTH_MM, height_mm=f"{HEIGHT_MM:.2f}",
                  qr_mm=QR_MM)


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1: keep French accents, replace what they lack."""
    for a, b in (("’", "'"), ("œ", "oe"), ("Œ", "OE"), ("…", "..."), ("–", "-"), ("—", "-")):
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def pdf(labels: Sequence[Label], title: str, lang: Lang = "fr") -> bytes:
    doc = FPDF(orientation="P", unit="mm", format="A4")
    doc.set_title(_latin1(title))
    doc.set_creator("hypervision")
    doc.set_auto_page_break(False)
    doc.set_margin(0)
    pad = 3.0
    for sheet in _sheets(labels):
        doc.add_page()
        for i, label in enumerate(sheet):
            x0 = (i % COLUMNS) * WIDTH_MM
            y0 = (i // COLUMNS) * HEIGHT_MM
            _draw_qr(doc, label.url, x0 + pad, y0 + (HEIGHT_MM - QR_MM) / 2, QR_MM)
            tx = x0 + pad + QR_MM + 2
            tw = WIDTH_MM - (tx - x0) - pad
            doc.set_xy(tx, y0 + pad + 2)
            doc.set_font("helvetica", "B", 8.5)
            doc.multi_cell(tw, 3.6, _latin1(short(label.name, 60)), align="L")
            doc.set_x(tx)
            doc.set_font("helvetica", "", 6.5)
            doc.multi_cell(tw, 2.9, _latin1(label.purpose), align="L")
            doc.set_x(tx)
            doc.set_font("helvetica", "I", 6)
            doc.multi_cell(tw, 2.7, _latin1(CALL[lang]), align="L")
            doc.set_x(tx)
            doc.set_font("helvetica", "", 5)
            doc.multi_cell(tw, 2.4, label.url, align="L", wrapmode=WrapMode.CHAR)
    return bytes(doc.output())


def _draw_qr(doc: FPDF, url: str, x: float, y: float, size: float) -> None:
    """Dark modules as filled rectangles, one per horizontal run (quiet zone included)."""
    code = qr.make(url)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = size / len(rows)
    doc.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                doc.rect(x + start * module, y + r * module, (c - start) * module, module,
                         style="F")
            else:
                c += 1
