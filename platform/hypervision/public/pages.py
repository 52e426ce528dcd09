"""The public pages: a page per device (what its QR code opens) and a member's register.

No login, no cookie, no script, no outside asset: one stylesheet served here and the
reader's own fonts. A strict Content-Security-Policy makes the browser refuse anything
else, should a template ever ask for it. Pages read the hv.public_* views only, as the
public role (hypervision.public.access), and show no measurement at all.

Routes (mounted by the API app, at its root so that QR codes stay short):
- GET /d/{public_id}[?lang=en]        the device's page (410 once the device is removed)
- GET /d/{public_id}/qr.svg | qr.png  its QR code, encoding the page's URL
- GET /m/{slug}/register[?lang=en]    the member's register of processing activities
- GET /m/{slug}/register.json         the same, as JSON
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from hypervision import processing_register as reg
from hypervision import qr
from hypervision.processing_register import Lang
from hypervision.public import access, records
from hypervision.public.render import render
from hypervision.public.texts import UI, long_date, metric_label
from hypervision.settings import Settings, get_settings

router = APIRouter(tags=["public"])

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"public.css": "text/css; charset=utf-8"}
PUBLIC_ID = re.compile(r"^[0-9a-z]{8,64}$")
SLUG = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

# Same origin only, no script at all; images may be the page's own QR code.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
                               " base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "interest-cohort=()",
    "Cache-Control": "public, max-age=300",
}


def public_connection() -> Iterator[psycopg.Connection]:
    with access.public_connection(get_settings()) as conn:
        yield conn


Conn = Annotated[psycopg.Connection, Depends(public_connection)]


def _lang(value: str | None) -> Lang:
    return "en" if value == "en" else "fr"


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _links(request: Request, lang: Lang) -> dict[str, str]:
    """Relative links for the language switch and the stylesheet (works under a prefix)."""
    other = "en" if lang == "fr" else "fr"
    return {
        "css": request.url_for("public_static", name="public.css").path,
        "other_lang": str(request.url.path) + ("?lang=en" if other == "en" else ""),
    }


def _not_found(request: Request, lang: Lang) -> HTMLResponse:
    return _html(render("not_found.html", lang, links=_links(request, lang)), 404)


def _device_view(device: records.PublicDevice, member: records.PublicMember,
                 operator: str | None, settings: Settings, lang: Lang) -> dict[str, Any]:
    """Everything the device page shows, already in words."""
    facts = reg.class_facts(device.data_class)
    texts = UI[lang]
    # Metrics in the model file's order, the battery last: it is about the device itself.
    metrics = sorted(device.metrics, key=lambda m: m.startswith("battery."))
    place = ", ".join(p for p in (device.building, device.address) if p)
    return {
        "name": device.name,
        "class_title": reg.pick(facts.title, lang),
        "member": member.name,
        "metrics": [metric_label(m, lang) for m in metrics],
        "model": f"{device.vendor} {device.model}",
        "model_description": device.model_description,
        "purpose": device.purpose or reg.pick(facts.purpose, lang),
        "public_description": device.public_description,
        "installed_on": device.installed_on.isoformat() if device.installed_on else None,
        "installed_on_text": long_date(device.installed_on, lang) if device.installed_on
        else None,
        "place": place or None,
        "dpo": member.dpo or {},
        "siren": member.siren,
        "legal_basis": reg.legal_basis(device, member, device.data_class, lang),
        "personal": facts.personal,
        "retention": reg.retention(member, device.data_class, lang).text,
        "hosting": reg.hosting(settings, lang),
        # The English text may be missing: then the French one is shown, marked as such.
        "hosting_lang": "en" if lang == "en" and settings.hosting_description_en else "fr",
        "path_network": texts["path_network"].format(operator=operator) if operator
        else texts["path_network_syndicate"],
        "path_member": texts["path_member"].format(member=member.name),
        "register_link": texts["register_link"].format(member=member.name),
    }


@router.get("/d/{public_id}", response_class=HTMLResponse, name="public_device")
def device_page(request: Request, public_id: str, conn: Conn,
                lang: str | None = None) -> HTMLResponse:
    language = _lang(lang)
    device = records.device(conn, public_id) if PUBLIC_ID.match(public_id) else None
    member = records.member(conn, device.member_slug) if device else None
    if device is None or member is None:
        return _not_found(request, language)
    links = _links(request, language)
    register_url = request.url_for("public_register", slug=member.slug).path
    links["register"] = register_url + ("?lang=en" if language == "en" else "")
    if not device.active:
        body = render("gone.html", language, links=links, name=device.name,
                      text=UI[language]["gone_text"].format(member=member.name),
                      dpo=member.dpo or {})
        return _html(body, 410)
    settings = get_settings()
    url = qr.page_url(settings, device.public_id)
    links["qr"] = request.url_for("public_device_qr_svg", public_id=device.public_id).path
    view = _device_view(device, member, records.network_operator(conn), settings, language)
    qr_alt = UI[language]["qr_alt"].format(url=url)
    return _html(render("device.html", language, links=links, d=view, qr_alt=qr_alt))


def _qr_target(conn: psycopg.Connection, public_id: str) -> str:
    device = records.device(conn, public_id) if PUBLIC_ID.match(public_id) else None
    if device is None:
        raise HTTPException(status_code=404)
    return qr.page_url(get_settings(), device.public_id)


@router.get("/d/{public_id}/qr.svg", name="public_device_qr_svg")
def device_qr_svg(public_id: str, conn: Conn) -> Response:
    return Response(qr.svg(_qr_target(conn, public_id)), media_type="image/svg+xml",
                    headers=SECURITY_HEADERS)


@router.get("/d/{public_id}/qr.png", name="public_device_qr_png")
def device_qr_png(public_id: str, conn: Conn) -> Response:
    return Response(qr.png(_qr_target(conn, public_id)), media_type="image/png",
                    headers=SECURITY_HEADERS)


def _register(conn: psycopg.Connection, slug: str, lang: Lang) -> reg.Register | None:
    member = records.member(conn, slug) if SLUG.match(slug) else None
    if member is None:
        return None
    return reg.build(member, records.member_devices(conn, slug), get_settings(),
                     records.network_operator(conn), lang)


@router.get("/m/{slug}/register", response_class=HTMLResponse, name="public_register")
def register_page(request: Request, slug: str, conn: Conn,
                  lang: str | None = None) -> HTMLResponse:
    language = _lang(lang)
    register = _register(conn, slug, language)
    if register is None:
        return _not_found(request, language)
    links = _links(request, language)
    links["json"] = request.url_for("public_register_json", slug=slug).path + (
        "?lang=en" if language == "en" else "")
    intro = UI[language]["register_intro"].format(member=register.controller["name"])
    settings = get_settings()
    hosting_lang = "en" if language == "en" and settings.hosting_description_en else "fr"
    return _html(render("register.html", language, links=links, r=register, intro=intro,
                        hosting_lang=hosting_lang))


@router.get("/m/{slug}/register.json", name="public_register_json")
def register_json(slug: str, conn: Conn, lang: str | None = None) -> JSONResponse:
    register = _register(conn, slug, _lang(lang))
    if register is None:
        raise HTTPException(status_code=404)
    return JSONResponse(register.to_json(), headers=SECURITY_HEADERS)


@router.get("/p/static/{name}", name="public_static")
def static_file(name: str) -> FileResponse:
    """The pages' own stylesheet; only the files listed in STATIC_FILES are served."""
    if name not in STATIC_FILES:
        raise HTTPException(status_code=404)
    return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                        headers=SECURITY_HEADERS)
