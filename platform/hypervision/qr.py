"""QR codes of devices: each encodes the URL of the device's public page.

The URL is `<public_base_url>/d/<public_id>` (hypervision.public.pages); the public id is
random and stored (hv.devices.public_id), so a printed code keeps working as long as the
base URL does. Codes are made with segno (pure Python, no image library): SVG for print,
PNG for everything else. Error correction level Q (25%): labels outdoors get scratched.
See platform/hypervision/public/README.md.
"""

from __future__ import annotations

import io

import segno

from hypervision.settings import Settings


def page_url(settings: Settings, public_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/d/{public_id}"


def make(url: str) -> segno.QRCode:
    # boost_error=False: keep level Q even where a higher one would fit the same size,
    # so that every label of a sheet has the same look.
    return segno.make_qr(url, error="q", boost_error=False)


def svg(url: str, scale: int = 4, title: str | None = None, scalable: bool = False) -> bytes:
    """An SVG of the code, with the quiet zone of 4 modules the standard requires.

    `scalable`: no width and height but a viewBox, so that CSS sizes it (label sheets).
    """
    out = io.BytesIO()
    make(url).save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True,
                   title=title, unit=None, dark="#000", light="#fff", omitsize=scalable)
    return out.getvalue()


def png(url: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make(url).save(out, kind="png", scale=scale, border=4, dark="#000", light="#fff")
    return out.getvalue()
