"""Every console page as every role: the API's rights (404 for strangers, 403 for a
missing right, personal data only under a grant), an audit entry like the API twin's for
every read, and the alert actions with their CSRF token and audit trail."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from hypervision.db import connect_admin
from tests.api.conftest import World
from tests.console import gamma
from tests.console.conftest import Gamma, csrf_of

pytestmark = pytest.mark.services

AIR = gamma.dev_eui("air", 3)
WATER = gamma.dev_eui("water", 1)
M = "/console/m/gamma"

# page -> expected status per persona. gaston: agent (read); gabrielle: admin; dora: the
# DPO (read); olga: operator without grant; bob: a stranger (another member's admin).
MATRIX: dict[str, dict[str, int]] = {
    M: {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200, "bob": 404},
    f"{M}/devices": {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200, "bob": 404},
    f"{M}/devices/{AIR}": {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200,
                           "bob": 404},
    f"{M}/devices/{WATER}": {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 403,
                             "bob": 404},
    f"{M}/alerts": {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200, "bob": 404},
    f"{M}/exports": {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200, "bob": 404},
    f"{M}/exports/download?kind=measurements&fmt=csv&devices={AIR}": {
        "gaston": 403, "gabrielle": 200, "dora": 403, "olga": 200, "bob": 404},
    f"{M}/exports/download?kind=uplinks&fmt=csv": {
        "gaston": 403, "gabrielle": 200, "dora": 403, "olga": 403, "bob": 404},
    f"{M}/journal": {"gaston": 403, "gabrielle": 200, "dora": 200, "olga": 200, "bob": 404},
    f"{M}/journal.csv": {"gaston": 403, "gabrielle": 200, "dora": 200, "olga": 200,
                         "bob": 404},
    f"{M}/journal/verify": {"gaston": 403, "gabrielle": 200, "dora": 200, "olga": 200,
                            "bob": 404},
    "/console/operator": {"gaston": 403, "gabrielle": 403, "dora": 403, "olga": 200,
                          "bob": 403},
}


@pytest.mark.parametrize("path", sorted(MATRIX))
def test_each_page_answers_each_role_as_the_api_would(
        persona: dict[str, TestClient], path: str) -> None:
    for who, expected in MATRIX[path].items():
        answer = persona[who].get(path, follow_redirects=False)
        assert answer.status_code == expected, (who, path, answer.text[:300])
        if expected == 200 and "download" not in path and not path.endswith(".csv"):
            assert answer.headers["content-type"].startswith("text/html")
            assert "unsafe-inline" not in answer.headers["content-security-policy"]


def _last_audit(world: World, actor: str) -> tuple[str, str, str | None]:
    with connect_admin(world.settings) as conn:
        row = conn.execute("SELECT action, target, member_slug FROM hv.audit_log"
                           " WHERE actor = %s ORDER BY id DESC LIMIT 1",
                           (f"user:{actor}",)).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize(("path", "action", "target"), [
    (f"{M}/devices", "devices.read", "*"),
    (f"{M}/devices/{AIR}", "measurements.read", AIR),
    (f"{M}/alerts", "alerts.read", "*"),
    (f"{M}/journal", "audit.read", ""),
])
def test_every_page_read_is_audited_like_its_api_twin(
        persona: dict[str, TestClient], console_world: World, path: str, action: str,
        target: str) -> None:
    assert persona["gabrielle"].get(path).status_code == 200
    assert _last_audit(console_world, "gabrielle@gamma.example.org") == (
        action, target, "gamma")


def test_an_operator_without_grant_sees_no_personal_device_nor_its_place(
        persona: dict[str, TestClient]) -> None:
    page = persona["olga"].get(f"{M}/devices").text
    assert WATER not in page and "Compteur d'eau" not in page
    assert AIR in page
    assert "masqués sans habilitation" in page
    own = persona["gabrielle"].get(f"{M}/devices").text
    assert WATER in own and own.count('class="dot') == 20


def test_filters_narrow_the_device_list(persona: dict[str, TestClient]) -> None:
    client = persona["gaston"]
    silent = client.get(f"{M}/devices?state=silent").text
    assert "20 capteurs" not in silent and "2 capteurs" in silent
    school = client.get(f"{M}/devices", params={"building": "École du Port"}).text
    assert "3 capteurs" in school and gamma.dev_eui("water", 1) not in school
    found = client.get(f"{M}/devices?q=verre+4").text
    assert "1 capteur<" in found and "Conteneur verre 4" in found


def test_the_home_page_counts_what_the_data_says(persona: dict[str, TestClient]) -> None:
    page = persona["gaston"].get(M).text
    # 20 devices: two silent, two with a low battery; open alerts, one per severity (the
    # critical one is closed by the browser test, the others stay open).
    assert '<span class="n">16</span> <a href="/console/m/gamma/devices?state=ok">' in page
    assert '<span class="n">2</span> <a href="/console/m/gamma/devices?state=silent">' in page
    assert '<span class="n">2</span> <a href="/console/m/gamma/devices?state=battery">' in page
    for severity in ("warning", "info"):
        assert ('<span class="n">1</span> <a href="/console/m/gamma/alerts?state=open&amp;'
                f'severity={severity}">') in page
    # An operator without grant: the eight water meters (personal data) are not counted.
    hidden = persona["olga"].get(M).text
    assert '<span class="n">12</span> <a href="/console/m/gamma/devices">' in hidden
    assert "masqués sans habilitation : 8" in hidden


def test_a_reader_gets_no_alert_action_and_cannot_post_one(
        persona: dict[str, TestClient], gamma_member: Gamma) -> None:
    client = persona["gaston"]
    page = client.get(f"{M}/alerts")
    assert "Prendre en charge" not in page.text
    alert = gamma_member.seeded["alerts"][0]
    answer = client.post(f"{M}/alerts/{alert}/acknowledge",
                         data={"csrf": csrf_of(page.text), "comment": "moi"},
                         follow_redirects=False)
    assert answer.status_code == 403


def test_an_alert_action_without_csrf_is_refused_and_changes_nothing(
        persona: dict[str, TestClient], gamma_member: Gamma, console_world: World) -> None:
    alert = gamma_member.seeded["alerts"][1]
    answer = persona["gabrielle"].post(f"{M}/alerts/{alert}/acknowledge",
                                       data={"comment": "sans jeton"},
                                       follow_redirects=False)
    assert answer.status_code == 403
    with connect_admin(console_world.settings) as conn:
        state = conn.execute("SELECT state FROM tenant_gamma.alerts WHERE id = %s",
                             (alert,)).fetchone()
    assert state == ("open",)


def test_only_the_members_admins_may_send_a_command(
        persona: dict[str, TestClient]) -> None:
    path = f"{M}/devices/{gamma.dev_eui('bin', 1)}"
    for who, expected in (("gaston", 403), ("olga", 403), ("bob", 404)):
        page = persona[who].get(f"{M}/alerts")
        csrf = csrf_of(page.text) if page.status_code == 200 else "0" * 64
        answer = persona[who].post(f"{path}/commands", data={
            "csrf": csrf, "command": "reboot", "params": "{}"}, follow_redirects=False)
        assert answer.status_code == expected, who
    page = persona["gabrielle"].get(path)
    bad = persona["gabrielle"].post(f"{path}/commands", data={
        "csrf": csrf_of(page.text), "command": "reboot", "params": "[1, 2]"},
        follow_redirects=False)
    assert bad.status_code == 400 and "JSON object" in bad.text


def test_the_journal_csv_has_the_entries_of_the_page(persona: dict[str, TestClient]) -> None:
    client = persona["dora"]
    client.get(f"{M}/alerts")
    csv_text = client.get(f"{M}/journal.csv?action=alerts.read").text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,at,actor,action,target")
    assert len(lines) > 1 and all(",alerts.read," in line for line in lines[1:])
    assert any("dora@gamma.example.org" in line for line in lines[1:])


def test_the_chain_verification_says_intact(persona: dict[str, TestClient]) -> None:
    page = persona["dora"].get(f"{M}/journal/verify").text
    assert "La chaîne est intacte" in page


def test_a_bad_value_in_the_address_gets_a_page_not_json(
        persona: dict[str, TestClient]) -> None:
    answer = persona["gaston"].get(f"{M}/devices?page=0")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "Demande incorrecte" in answer.text and "page" in answer.text
    api = persona["gaston"].get("/api/v1/members/gamma/devices/nothex")
    assert api.headers["content-type"].startswith("application/json")


def test_pages_speak_english_on_request(persona: dict[str, TestClient]) -> None:
    client = persona["gaston"]
    english = client.get(f"/console/lang/en?next={M}/alerts")
    assert '<html lang="en">' in english.text and "Alerts" in english.text
    french = client.get(f"/console/lang/fr?next={M}/alerts")
    assert '<html lang="fr">' in french.text and "Alertes" in french.text


def test_an_export_for_a_third_party_recipient_is_pseudonymised_and_listed(
        persona: dict[str, TestClient]) -> None:
    client = persona["gabrielle"]
    answer = client.get(f"{M}/exports/download", params={
        "kind": "measurements", "fmt": "csv", "devices": AIR,
        "recipient": "Bureau d'études"})
    assert answer.status_code == 200
    lines = answer.text.strip().splitlines()
    assert lines[0].startswith("time,dev_eui,device_name,metric,value")
    rows = [line.split(",") for line in lines[1:]]
    assert rows and all(r[1] != AIR and "CO2 salle" not in r[2] for r in rows)
    # The recipient's file coarsens times to the hour.
    assert all(r[0].endswith(":00:00.000000Z") for r in rows), rows[0]
    history = client.get(f"{M}/exports").text
    assert "Bureau d&#39;études (pseudonymisé)" in history


def test_the_alert_page_and_my_account_answer_each_role(
        persona: dict[str, TestClient], gamma_member: Gamma) -> None:
    alert = f"{M}/alerts/{gamma_member.seeded['alerts'][-1]}"
    expected = {alert: {"gaston": 200, "gabrielle": 200, "dora": 200, "olga": 200,
                        "oscar": 200, "bob": 404},
                f"{M}/alerts/999999": {"gaston": 404, "gabrielle": 404, "olga": 404,
                                       "bob": 404},
                "/console/account": {who: 200 for who in persona}}
    for path, answers in expected.items():
        for who, status in answers.items():
            answer = persona[who].get(path, follow_redirects=False)
            assert answer.status_code == status, (who, path)
    # The account page shows the signed-in person only.
    assert "bob@beta.example.org" in persona["bob"].get("/console/account").text
    assert "gaston@" not in persona["bob"].get("/console/account").text


EUI = re.compile(r"<code>([0-9a-f]{16})</code>")


def test_the_device_list_shows_the_states_the_health_module_computes(
        persona: dict[str, TestClient], console_world: World) -> None:
    from hypervision.analytics import health
    from hypervision.analytics.members import settings_of
    from hypervision.console.pages.common import now

    with connect_admin(console_world.settings) as conn:
        config = settings_of(conn, gamma.SCHEMA)
        states = health.device_states(conn, gamma.SCHEMA, now(), config.health)
        active = {r[0] for r in conn.execute(
            "SELECT dev_eui FROM hv.devices WHERE member_slug = 'gamma' AND active")}
    client = persona["gabrielle"]
    listed = set(EUI.findall(client.get(f"{M}/devices").text))
    assert listed == active and len(listed) == 20
    for word in ("ok", "silent", "battery"):
        page = client.get(f"{M}/devices?state={word}").text
        expected = {d for d in active
                    if (states[d].state if d in states else "silent") == word}
        assert set(EUI.findall(page)) == expected and expected, word


def test_the_device_list_pages_through_every_device_in_order(
        persona: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    from hypervision.console.pages import devices

    client = persona["gaston"]
    whole = EUI.findall(client.get(f"{M}/devices").text)
    monkeypatch.setattr(devices, "PAGE_SIZE", 7)
    pages = [client.get(f"{M}/devices?page={n}").text for n in (1, 2, 3, 4)]
    assert [len(EUI.findall(p)) for p in pages] == [7, 7, 6, 0]
    assert [e for p in pages for e in EUI.findall(p)] == whole
    assert "page 1 / 3" in pages[0] and 'rel="next"' in pages[1] and 'rel="prev"' in pages[2]


def test_a_map_of_many_devices_groups_close_ones_and_counts_them_all() -> None:
    from hypervision.console import svg

    pins = [svg.Pin(47.2 + (i % 40) * 0.001, -1.55 + (i // 40) * 0.001, f"d{i}",
                    f"/console/m/x/devices/{i}", "silent" if i % 10 == 0 else "ok")
            for i in range(svg.MAX_DOTS + 600)]
    grouped = str(svg.device_map(pins, "t", "s", lambda n, silent: f"{n}|{silent}"))
    titles = re.findall(r"<title>(\d+)\|(\d+)</title>", grouped)
    assert "<a " not in grouped and 0 < len(titles) < len(pins) // 2
    assert sum(int(n) for n, _ in titles) == len(pins)
    assert sum(int(s) for _, s in titles) == len(pins) // 10
    few = str(svg.device_map(pins[:svg.MAX_DOTS], "t", "s"))
    assert few.count("<a ") == svg.MAX_DOTS


CHECKBOX = re.compile(r'<input type="checkbox" id="dev-([0-9a-f]{16})" name="devices"')


def test_the_exports_form_finds_devices_by_a_search_not_a_list_of_all(
        persona: dict[str, TestClient], console_world: World,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hypervision.console.pages import exports

    client = persona["gabrielle"]
    # The page itself lists no device until one is searched for.
    page = client.get(f"{M}/exports").text
    assert CHECKBOX.findall(page) == [] and "l’export porte sur tous les capteurs" in page
    # The search, as console.js asks it: name or identifier, in name order.
    found = client.get(f"{M}/exports/devices", params={"q": "verre"}).json()
    assert [d["name"] for d in found["devices"]] == [f"Conteneur verre {n}"
                                                    for n in range(1, 7)]
    assert found["matching"] == 6 and "6 capteurs correspondent à « verre »" in found["message"]
    by_eui = client.get(f"{M}/exports/devices", params={"q": AIR.upper()}).json()
    assert [d["dev_eui"] for d in by_eui["devices"]] == [AIR]
    assert _last_audit(console_world, "gabrielle@gamma.example.org") == (
        "devices.read", "*", "gamma")
    # Beyond the limit: the first ones, how many match, and a word to narrow it.
    monkeypatch.setattr(exports, "SEARCH_LIMIT", 2)
    many = client.get(f"{M}/exports/devices", params={"q": "verre"}).json()
    assert len(many["devices"]) == 2 and many["matching"] == 6
    assert "les 2 premiers sont affichés" in many["message"]
    # Without script: the search field's own form lists the matches on the page.
    listed = client.get(f"{M}/exports", params={"device_q": "salle"}).text
    assert CHECKBOX.findall(listed)[:1] == [gamma.dev_eui("air", 1)]
    assert len(CHECKBOX.findall(listed)) == 2 and "6 capteurs correspondent" in listed
    # In English on request.
    client.get(f"/console/lang/en?next={M}/exports")
    try:
        english = client.get(f"{M}/exports/devices", params={"q": "zzz"}).json()
    finally:
        client.get(f"/console/lang/fr?next={M}/exports")
    assert english["devices"] == [] and english["message"] == "No device matches “zzz”."


def test_the_exports_device_search_keeps_the_rights_of_the_pages(
        persona: dict[str, TestClient]) -> None:
    # An operator without grant finds no personal device; a stranger gets a 404.
    assert persona["olga"].get(f"{M}/exports/devices", params={"q": "Compteur"}).json()[
        "devices"] == []
    assert persona["olga"].get(f"{M}/exports/devices", params={"q": "CO2"}).json()[
        "matching"] == 6
    assert "Compteur" not in persona["olga"].get(
        f"{M}/exports", params={"device_q": "Compteur"}).text.split("</legend>")[1]
    assert persona["bob"].get(f"{M}/exports/devices", params={"q": "CO2"},
                              follow_redirects=False).status_code == 404
    assert persona["gaston"].get(f"{M}/exports/devices", params={"q": "eau"}).json()[
        "matching"] == 8


def test_a_long_device_list_shows_its_map_as_an_image_of_its_own(
        persona: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    import html

    from hypervision.console import svg

    # Beyond MAX_DOTS matching devices, the page does not draw the map: it links an image
    # the browser fetches beside it, with the same filters and rights.
    monkeypatch.setattr(svg, "MAX_DOTS", 5)
    client = persona["gabrielle"]
    page = client.get(f"{M}/devices").text
    found = re.search(r'<img class="map" src="([^"]+)"', page)
    assert found is not None and 'class="dot' not in page and "Plus de 5 capteurs" in page
    src = html.unescape(found.group(1))
    image = client.get(src)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    assert image.headers["content-security-policy"] == "default-src 'none'"
    assert 'role="img"' in image.text and 'fill="#a4161a"' in image.text  # painted itself
    groups = re.findall(r"<title>(\d+) capteurs? ici(, dont (\d+) silencieux|, silencieux)?"
                        "</title>", image.text)
    assert sum(int(n) for n, _, _ in groups) == 20
    assert sum(int(s) if s else 1 if word else 0 for _, word, s in groups) == 2
    # The list's filters narrow the map too; few enough, it is drawn in the page again.
    school = client.get(f"{M}/devices/map.svg", params={"building": "École du Port"}).text
    assert sum(int(n) for n in re.findall(r"<title>(\d+) capteurs? ici", school)) == 3
    silent = client.get(f"{M}/devices?state=silent").text
    assert silent.count('class="dot') == 2 and '<img class="map"' not in silent
    # An operator without grant: no personal device on it; a stranger: not found.
    olga = persona["olga"].get(src).text
    assert sum(int(n) for n in re.findall(r"<title>(\d+) capteurs? ici", olga)) == 12
    assert persona["bob"].get(src, follow_redirects=False).status_code == 404
