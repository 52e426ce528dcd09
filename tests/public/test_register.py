"""The public register of processing activities, generated from a member's declarations."""

from __future__ import annotations

from typing import Any

import pytest

from tests.public.conftest import Civic

pytestmark = pytest.mark.services


def test_the_register_lists_each_declared_processing_with_its_facts(client: Any,
                                                                    civic: Civic) -> None:
    response = client.get("/m/civic/register.json")
    assert response.status_code == 200
    register = response.json()
    # One entry per data class of the member's devices in service, personal data first.
    classes = [p["data_class"] for p in register["processing"]]
    assert classes == ["water-consumption", "indoor-air", "waste-fill"]
    assert register["controller"] == {"name": "Ville de Civique (test)", "kind": "commune",
                                      "siren": "210000999"}
    assert register["dpo"]["email"] == "dpo@civic.example.org"
    assert register["hosting"] == civic.settings.hosting_description

    water, air, waste = register["processing"]
    assert water["personal_data"] is True and air["personal_data"] is False
    assert water["declared_purposes"] == [
        "Relever la consommation d'eau de l'école pour repérer les fuites."]
    assert "6.1.e" in water["legal_basis"]
    assert (water["retention"]["measurements_days"], water["retention"]["raw_days"]) == (730, 90)
    assert (waste["retention"]["measurements_days"], waste["retention"]["raw_days"]) == (365, 90)
    # Air has no declared retention: the register says so instead of inventing one.
    assert air["retention"]["measurements_days"] is None
    assert "non déclarée" in air["retention"]["text"]
    assert "Régie des eaux du Pays (tiers : données pseudonymisées)" in water["recipients"]
    assert "Service des finances" in water["recipients"]
    assert [p["devices"] for p in register["processing"]] == [1, 1, 1]  # the removed one left
    for entry in register["processing"]:
        for key in ("purpose", "categories_of_data", "data_subjects", "transfers",
                    "security_measures"):
            assert entry[key], (entry["data_class"], key)


def test_the_register_shows_no_user_and_no_device_identifier(client: Any, civic: Civic
                                                             ) -> None:
    for path in ("/m/civic/register", "/m/civic/register.json", "/m/civic/register?lang=en"):
        text = client.get(path).text
        assert "Agent Confidentiel" not in text and "agent.confidentiel" not in text
        assert "c1c1c1c1c1c1" not in text and "regie@example.org" not in text


def test_the_register_page_is_html_in_french_or_english(client: Any, civic: Civic) -> None:
    html = client.get("/m/civic/register").text
    assert '<html lang="fr">' in html
    for title in ("Relève à distance des compteurs d&#39;eau",
                  "Qualité de l&#39;air intérieur des bâtiments publics",
                  "Taux de remplissage des conteneurs de déchets"):
        assert f">{title}</h2>" in html
    assert 'href="/m/civic/register.json"' in html
    english = client.get("/m/civic/register?lang=en")
    assert '<html lang="en">' in english.text
    assert "Remote reading of water meters" in english.text
    assert english.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.get("/m/civic/register.json?lang=en").json()["processing"][0][
        "title"] == "Remote reading of water meters"


def test_an_unknown_member_has_no_register(client: Any, civic: Civic) -> None:
    assert client.get("/m/nobody/register").status_code == 404
    assert client.get("/m/nobody/register.json").status_code == 404
    assert client.get("/m/Not-A-Slug/register.json").status_code == 404
