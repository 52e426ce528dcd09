"""Drafts of the notifications an incident owes, filled from its record (docs/syndicate.md,
"Notification drafts"): the fields of the CNIL's personal-data breach notification form
(GDPR art. 33) and of the national CSIRT's NIS2 early warning, incident notification and
final report (NIS2 art. 23). A person checks and completes them, files them on the
authorities' sites, then records the filing (`hypervision incidents file`), which stops
the clock's alerts. Fields the record cannot know are left as "À compléter".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import psycopg

from hypervision.syndicate import incidents

TODO = "À compléter"
NATURE_FR = {"confidentiality": "Perte de confidentialité", "integrity": "Perte d'intégrité",
             "availability": "Perte de disponibilité"}
SEVERITY_FR = {"low": "Faible", "medium": "Modérée", "high": "Élevée", "critical": "Critique"}
CLASS_FR = {"water-consumption": "Consommations d'eau des foyers (index, débits horaires)",
            "energy": "Consommations d'énergie", "waste-fill": "Remplissage de conteneurs",
            "indoor-air": "Qualité de l'air intérieur", "lighting": "Éclairage public",
            "technical": "Données techniques des capteurs"}


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else TODO


def _entity(conn: psycopg.Connection, member: str | None) -> dict[str, Any]:
    row = conn.execute(
        "SELECT slug, name, siren, spec->'contacts' FROM hv.members WHERE slug = %s"
        " OR (%s::text IS NULL AND kind = 'syndicate') ORDER BY slug LIMIT 1",
        (member, member)).fetchone()
    if row is None:
        return {"slug": member, "name": member or TODO, "siren": None, "contacts": {}}
    return {"slug": row[0], "name": row[1], "siren": row[2], "contacts": row[3] or {}}


def _contact(contacts: Mapping[str, Any], role: str) -> str:
    c = contacts.get(role) or {}
    parts = [c.get("name"), c.get("email"), c.get("phone")]
    return ", ".join(p for p in parts if p) or TODO


def _actions(incident: Mapping[str, Any]) -> str:
    return "\n".join(f"- {a['at'][:16].replace('T', ' ')} : {a['text']}"
                     for a in incident["actions"]) or TODO


def cnil(conn: psycopg.Connection, incident: Mapping[str, Any],
         now: dt.datetime) -> dict[str, str]:
    """The CNIL's breach notification form, field by field (French labels)."""
    entity = _entity(conn, incident["member_slug"])
    known = incident["breach_known_at"]
    late = known is not None and now > known + dt.timedelta(hours=72)
    classes = [CLASS_FR.get(c, c) for c in incident["data_classes"]]
    return {
        "Type de notification": "Initiale" if incident["state"] == "open" else "Complète",
        "Organisme (responsable de traitement)": entity["name"],
        "SIREN": entity["siren"] or TODO,
        "Délégué à la protection des données": _contact(entity["contacts"], "dpo"),
        "Personne à contacter": _contact(entity["contacts"], "technical"),
        "Date de début de la violation": TODO,
        "Date de découverte de la violation": _t(incident["detected_at"]),
        "Date de prise de connaissance (début du délai de 72 h)": _t(known),
        "Motifs du retard (notification au-delà de 72 h)": TODO if late else "Sans objet",
        "Nature de la violation": ", ".join(NATURE_FR.get(n, n)
                                            for n in incident["breach_nature"]) or TODO,
        "Origine de l'incident": ("Acte malveillant" if incident["malicious"]
                                  else "Acte non malveillant" if incident["malicious"] is False
                                  else TODO),
        "Description de l'incident": (f"{incident['title']}. {incident['description']}"
                                      .strip()),
        "Systèmes concernés": ", ".join(incident["systems"]) or TODO,
        "Catégories de données concernées": "; ".join(classes) or TODO,
        "Catégories de personnes concernées": ("Abonnés et usagers des services publics"
                                               " du membre"),
        "Nombre approximatif de personnes concernées": (
            str(incident["data_subjects"]) if incident["data_subjects"] is not None else TODO),
        "Méthode d'estimation": ("Capteurs actifs du membre relevant des catégories de"
                                 " données concernées (un foyer par compteur)"),
        "Conséquences probables pour les personnes": TODO,
        "Mesures prises ou envisagées": _actions(incident),
        "Information des personnes concernées": TODO,
        "Notification à d'autres autorités": ("CSIRT national (NIS2)"
                                              if incident["significant"] else "Non"),
        "Caractère transfrontalier": "Oui" if incident["cross_border"] else "Non",
    }


def csirt(conn: psycopg.Connection, incident: Mapping[str, Any], stage: str,
          now: dt.datetime) -> dict[str, str]:
    """The national CSIRT's NIS2 report at `stage` (early-warning, notification or
    final-report): each stage repeats the previous one's fields and adds its own."""
    entity = _entity(conn, incident["member_slug"])
    members = ", ".join(incident["members_affected"]) or (incident["member_slug"] or "tous")
    fields = {
        "Entité": entity["name"],
        "SIREN": entity["siren"] or TODO,
        "Secteur": "Administration publique / réseau LoRaWAN d'un syndicat départemental",
        "Contact": _contact(entity["contacts"], "technical"),
        "Date et heure de détection": _t(incident["detected_at"]),
        "Incident significatif": "Oui" if incident["significant"] else "Non",
        "Acte illicite ou malveillant suspecté": ("Oui" if incident["malicious"]
                                                  else "Non" if incident["malicious"] is False
                                                  else TODO),
        "Impact transfrontalier possible": "Oui" if incident["cross_border"] else "Non",
        "Description sommaire": incident["title"],
    }
    if stage in ("notification", "final-report"):
        fields.update({
            "Gravité": SEVERITY_FR.get(incident["severity"], incident["severity"]),
            "Systèmes affectés": ", ".join(incident["systems"]) or TODO,
            "Membres (services) affectés": members,
            "Impact": incident["description"] or TODO,
            "Indicateurs de compromission": TODO,
            "Mesures d'atténuation": _actions(incident),
        })
    if stage == "final-report":
        fields.update({
            "Description détaillée": incident["description"] or TODO,
            "Cause première (type de menace)": TODO,
            "Mesures d'atténuation appliquées et en cours": _actions(incident),
            "Fin de l'incident": _t(incident["closed_at"]),
        })
    fields["Établi le"] = _t(now)
    return fields


def drafts(conn: psycopg.Connection, incident_id: int,
           now: dt.datetime) -> dict[str, dict[str, str]]:
    """Every draft the incident's clocks call for, by clock name."""
    incident = incidents.get(conn, incident_id)
    result: dict[str, dict[str, str]] = {}
    for clock in incidents.clocks(incident, {}):
        if clock.name == "gdpr-notification":
            result[clock.name] = cnil(conn, incident, now)
        else:
            result[clock.name] = csirt(conn, incident, clock.name.removeprefix("nis2-"), now)
    return result


def as_text(title: str, fields: Mapping[str, str]) -> str:
    """A draft as plain text, to paste from."""
    width = max(len(k) for k in fields)
    lines = [title, "=" * len(title)]
    for key, value in fields.items():
        first, *rest = str(value).splitlines() or [""]
        lines.append(f"{key.ljust(width)} : {first}")
        lines.extend(" " * (width + 3) + r for r in rest)
    return "\n".join(lines) + "\n"
