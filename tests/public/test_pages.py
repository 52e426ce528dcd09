"""The public device pages and QR codes, against the real database and public role."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import zxingcpp
from PIL import Image

from hypervision import qr
from hypervision.db import connect_admin
from hypervision.public.access import connect_public
from tests.public.conftest import Civic
from tests.public.members import apply_member

pytestmark = pytest.mark.services

WATER, WASTE, AIR, REMOVED = (f"c1c1c1c1c1c1000{i}" for i in range(1, 5))


def page(client: Any, civic: Civic, dev_eui: str, lang: str | None = None) -> Any:
    suffix = f"?lang={lang}" if lang else ""
    return client.get(f"/d/{civic.public_ids[dev_eui]}{suffix}")


def test_a_device_page_says_what_why_who_how_long_where_and_how(client: Any, civic: Civic
                                                               ) -> None:
    response = page(client, civic, WATER)
    assert response.status_code == 200
    html = response.text
    assert '<html lang="fr">' in html
    for expected in (
        "Compteur de l&#39;école Jules Ferry",                  # the device
        "l&#39;index du compteur d&#39;eau",                     # what it measures
        "Relever la consommation d&#39;eau de l&#39;école",       # why (declared purpose)
        "Ville de Civique (test)", "SIREN 210000999",            # who is responsible
        "Délégation Civique", 'href="mailto:dpo@civic.example.org"', 'href="tel:0298000000"',
        "article 6.1.e du RGPD",                                 # legal basis
        "Mesures : 2 ans. Messages bruts reçus des capteurs : 90 jours.",  # retention
        civic.settings.hosting_description,                      # where it is hosted
        # The network server is named after the syndicate when one is declared.
        "passerelle", "Le serveur de réseau ", "plateforme d&#39;hypervision",
        "Installé le", "12 mars 2024",
        "/m/civic/register",                                     # the register
    ):
        assert expected in html, expected


def test_a_device_page_reveals_nothing_that_could_identify_a_household(
    client: Any, civic: Civic
) -> None:
    with connect_admin(civic.settings) as admin:
        admin.execute(
            "INSERT INTO tenant_civic.measurements (time, dev_eui, metric, value, unit,"
            " deduplication_id) VALUES (now(), %s, 'water.index', 987654.5, 'L',"
            " gen_random_uuid()) ON CONFLICT DO NOTHING", (WATER,))
    html = page(client, civic, WATER).text
    for secret in (WATER, "987654", "12 rue des Lilas", "48.0", "Agent Confidentiel",
                   "agent.confidentiel", "litres_per_pulse", "regie@example.org"):
        assert secret not in html, secret
    # A waste container is not about a person: its place is shown.
    assert "Place du Marché" in page(client, civic, WASTE).text


def test_a_device_page_loads_nothing_from_elsewhere(client: Any, civic: Civic) -> None:
    response = page(client, civic, AIR)
    html = response.text
    assert "<script" not in html
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert links
    for link in links:
        assert link.startswith(("/", "?", "#", "mailto:", "tel:")), link
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    (stylesheet,) = [link for link in links if link.endswith(".css")]
    css = client.get(stylesheet)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@import" not in css.text and "url(" not in css.text
    assert client.get("/p/static/..%2Fpages.py").status_code == 404


def test_a_device_page_is_accessible_in_its_structure(client: Any, civic: Civic) -> None:
    html = page(client, civic, AIR).text
    assert len(re.findall(r"<h1[ >]", html)) == 1
    assert len(re.findall(r"<h2 ", html)) >= 8
    assert 'name="viewport"' in html
    for img in re.findall(r"<img [^>]+>", html):
        assert re.search(r'alt="[^"]{10,}"', img), img


def test_a_device_page_is_in_english_with_lang_en(client: Any, civic: Civic) -> None:
    html = page(client, civic, WATER, lang="en").text
    assert '<html lang="en">' in html
    for expected in ("What this sensor measures", "the water meter index",
                     "GDPR art. 6(1)(e)", "Measurements: 2 years", "Data protection officer",
                     'lang="fr">Relever la consommation'):
        assert expected in html, expected
    assert "Ce que mesure" not in html
    # Every page links to the other language.
    assert 'hreflang="fr"' in html
    assert 'hreflang="en"' in page(client, civic, WATER).text


def test_a_removed_device_says_so_and_an_unknown_one_is_not_found(client: Any, civic: Civic
                                                                 ) -> None:
    gone = page(client, civic, REMOVED)
    assert gone.status_code == 410
    assert "plus en service" in gone.text and "dpo@civic.example.org" in gone.text
    assert client.get("/d/0123456789abcdef").status_code == 404
    assert client.get("/d/NOT-AN-ID").status_code == 404
    assert client.get(f"/d/{WATER}").status_code == 404  # the DevEUI is not a public id


def test_the_qr_code_decodes_to_the_page_url(client: Any, civic: Civic) -> None:
    public_id = civic.public_ids[WATER]
    png = client.get(f"/d/{public_id}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    assert found.text == f"{civic.settings.public_base_url}/d/{public_id}"
    # The URL it encodes is this device's page.
    assert client.get(urlsplit(found.text).path).text == page(client, civic, WATER).text

    svg = client.get(f"/d/{public_id}/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.content == qr.svg(found.text)
    assert client.get("/d/0123456789abcdef/qr.png").status_code == 404


def test_public_ids_are_random_stable_and_unrelated_to_the_dev_eui(
    civic: Civic, tmp_path: Any
) -> None:
    ids = civic.public_ids
    assert len(set(ids.values())) == len(ids) == 4
    for dev_eui, public_id in ids.items():
        assert re.fullmatch(r"[0-9a-f]{16}", public_id)
        assert public_id not in dev_eui and dev_eui[-4:] not in public_id
    with connect_admin(civic.settings) as admin:
        apply_member(admin, civic.settings, civic.spec)  # a re-apply keeps them
        again = dict(admin.execute(
            "SELECT dev_eui, public_id FROM hv.devices WHERE member_slug = 'civic'").fetchall())
    assert again == ids


def test_the_public_role_reads_the_public_views_and_nothing_else(civic: Civic) -> None:
    with connect_public(civic.settings) as conn:
        assert conn.execute("SELECT count(*) FROM hv.public_devices"
                            " WHERE member_slug = 'civic'").fetchone() == (4,)
        address = conn.execute(
            "SELECT address, building FROM hv.public_devices WHERE public_id = %s",
            (civic.public_ids[WATER],)).fetchone()
        assert address == (None, None)
        for forbidden in ("hv.devices", "hv.members", "tenant_civic.measurements",
                          "tenant_alpha.uplinks", "hv.audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {forbidden} LIMIT 1")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE t (x int)")


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_text_contrast_meets_wcag_aaa_in_light_and_dark_mode(client: Any) -> None:
    css = client.get("/p/static/public.css").text
    schemes = re.findall(r":root\s*{([^}]*)}", css)
    assert len(schemes) == 2  # light, and dark (prefers-color-scheme)
    for scheme in schemes:
        colours = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-f]{6})", scheme))
        for text in ("text", "muted", "link"):
            for background in ("bg", "panel"):
                ratio = contrast(colours[text], colours[background])
                assert ratio >= 7, (text, background, round(ratio, 2))
