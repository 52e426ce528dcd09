"""The public register of processing activities of a member (GDPR art. 30), from its files.

Nothing here is typed by hand per member: one entry per data class that the member's
active devices declare, with the purpose, legal basis, categories of data and of data
subjects, retention (the member's `retention:`), recipients (`export_recipients:`), the
controller and its DPO, and where the data is hosted. The same facts feed the public
device pages (hypervision.public.pages), so a page and the register cannot disagree.

Texts exist in French (default) and English. A legal basis is taken, in this order, from
the device (`legal_basis`), from the member (`legal_bases[<data class>]`) — two fields
proposed for tenancy/spec.py — or from the data class's default below; either a key of
LEGAL_BASES or free text.
See platform/hypervision/public/README.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hypervision.public.records import PublicDevice, PublicMember
from hypervision.settings import Settings

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
Text = dict[Lang, str]


def pick(text: Text, lang: Lang) -> str:
    return text.get(lang) or text["fr"]


LEGAL_BASES: dict[str, Text] = {
    "public-task": {
        "fr": "Exécution d'une mission d'intérêt public (article 6.1.e du RGPD)",
        "en": "Performance of a task carried out in the public interest (GDPR art. 6(1)(e))",
    },
    "contract": {
        "fr": "Exécution du contrat d'abonnement au service (article 6.1.b du RGPD)",
        "en": "Performance of the service subscription contract (GDPR art. 6(1)(b))",
    },
    "legal-obligation": {
        "fr": "Respect d'une obligation légale (article 6.1.c du RGPD)",
        "en": "Compliance with a legal obligation (GDPR art. 6(1)(c))",
    },
    "consent": {
        "fr": "Consentement de la personne concernée (article 6.1.a du RGPD)",
        "en": "Consent of the data subject (GDPR art. 6(1)(a))",
    },
}


@dataclass(frozen=True)
class ClassFacts:
    """What a data class is about, for citizens. `personal`: may relate to a person."""

    title: Text
    purpose: Text
    categories: Text
    subjects: Text
    personal: bool
    legal_basis: str = "public-task"


NO_SUBJECTS: Text = {
    "fr": "Aucune : ces mesures portent sur des équipements ou des lieux, pas sur des personnes.",
    "en": "None: these measurements concern equipment or places, not people.",
}
TECHNICAL: Text = {
    "fr": "données techniques de l'appareil (niveau de pile, qualité de la liaison radio)",
    "en": "technical data of the device (battery level, radio link quality)",
}

DATA_CLASSES: dict[str, ClassFacts] = {
    "water-consumption": ClassFacts(
        title={"fr": "Relève à distance des compteurs d'eau",
               "en": "Remote reading of water meters"},
        purpose={"fr": "Relever les index des compteurs d'eau pour facturer le service, "
                       "détecter les fuites et suivre le réseau de distribution.",
                 "en": "Read water meter indexes to bill the service, detect leaks and "
                       "monitor the distribution network."},
        categories={"fr": "index du compteur d'eau et date de la relève (consommation d'un "
                          "abonné), identifiant du compteur, " + TECHNICAL["fr"],
                    "en": "water meter index and reading time (a subscriber's consumption), "
                          "meter identifier, " + TECHNICAL["en"]},
        subjects={"fr": "Abonnés du service de l'eau.",
                  "en": "Subscribers of the water service."},
        personal=True,
    ),
    "waste-fill": ClassFacts(
        title={"fr": "Taux de remplissage des conteneurs de déchets",
               "en": "Fill level of waste containers"},
        purpose={"fr": "Mesurer le remplissage des conteneurs pour ne les vider que lorsqu'il "
                       "le faut, et réduire les tournées de collecte.",
                 "en": "Measure how full containers are so that they are emptied only when "
                       "needed, with fewer collection rounds."},
        categories={"fr": "distance jusqu'aux déchets, taux de remplissage, température du "
                          "conteneur, " + TECHNICAL["fr"],
                    "en": "distance to the waste, fill level, container temperature, "
                          + TECHNICAL["en"]},
        subjects=NO_SUBJECTS,
        personal=False,
    ),
    "indoor-air": ClassFacts(
        title={"fr": "Qualité de l'air intérieur des bâtiments publics",
               "en": "Indoor air quality in public buildings"},
        purpose={"fr": "Suivre le CO2, la température et l'humidité des salles (écoles, "
                       "bâtiments publics) pour aérer au bon moment et en rendre compte.",
                 "en": "Monitor CO2, temperature and humidity in rooms (schools, public "
                       "buildings) to air them at the right time and report on it."},
        categories={"fr": "concentration de CO2, température et humidité d'une pièce, "
                          + TECHNICAL["fr"] + " ; rien sur les occupants",
                    "en": "CO2 concentration, temperature and humidity of a room, "
                          + TECHNICAL["en"] + "; nothing about the occupants"},
        subjects=NO_SUBJECTS,
        personal=False,
    ),
    "energy": ClassFacts(
        title={"fr": "Consommation d'énergie des bâtiments publics",
               "en": "Energy use of public buildings"},
        purpose={"fr": "Suivre la consommation d'énergie des bâtiments publics pour la réduire.",
                 "en": "Monitor the energy use of public buildings in order to reduce it."},
        categories={"fr": "énergie et puissance consommées, " + TECHNICAL["fr"],
                    "en": "energy and power used, " + TECHNICAL["en"]},
        subjects=NO_SUBJECTS,
        personal=False,
    ),
    "lighting": ClassFacts(
        title={"fr": "Télégestion de l'éclairage public",
               "en": "Remote management of public lighting"},
        purpose={"fr": "Piloter l'éclairage public (allumage, gradation) et repérer les pannes.",
                 "en": "Control public lighting (switching, dimming) and detect failures."},
        categories={"fr": "état d'allumage et de gradation, énergie, " + TECHNICAL["fr"],
                    "en": "on/off and dimming state, energy, " + TECHNICAL["en"]},
        subjects=NO_SUBJECTS,
        personal=False,
    ),
    "technical": ClassFacts(
        title={"fr": "Supervision technique du réseau et des équipements",
               "en": "Technical monitoring of the network and equipment"},
        purpose={"fr": "Vérifier le bon fonctionnement des capteurs et du réseau.",
                 "en": "Check that sensors and the network work properly."},
        categories={"fr": TECHNICAL["fr"], "en": TECHNICAL["en"]},
        subjects=NO_SUBJECTS,
        personal=False,
    ),
}

SECURITY: Text = {
    "fr": "Données de chaque collectivité isolées dans la base (schéma et rôles dédiés, "
          "accès en lecture seule pour les tableaux de bord et les exports) ; journal d'audit "
          "infalsifiable de chaque consultation, modification et export ; exports vers des "
          "tiers pseudonymisés ; suppression automatique à l'échéance de conservation ; aucun "
          "service extérieur, aucun traceur.",
    "en": "Each authority's data isolated in the database (own schema and roles, read-only "
          "access for dashboards and exports); tamper-evident audit log of every read, change "
          "and export; pseudonymised exports to third parties; automatic deletion when the "
          "retention period ends; no outside service, no tracker.",
}
TRANSFERS: Text = {
    "fr": "Aucun transfert hors de l'Union européenne.",
    "en": "No transfer outside the European Union.",
}


def class_facts(data_class: str) -> ClassFacts:
    return DATA_CLASSES.get(data_class, DATA_CLASSES["technical"])


def legal_basis(device: PublicDevice | None, member: PublicMember, data_class: str,
                lang: Lang) -> str:
    """The legal basis text: device's, else the member's for the class, else the default."""
    chosen = (device.legal_basis if device else None) or (member.legal_bases or {}).get(
        data_class) or class_facts(data_class).legal_basis
    return pick(LEGAL_BASES[chosen], lang) if chosen in LEGAL_BASES else chosen


def duration(days: int | None, lang: Lang) -> str:
    """A retention in words: '2 ans', '90 jours', or 'not declared'."""
    if days is None:
        return {"fr": "non déclarée (contactez le délégué à la protection des données)",
                "en": "not declared (contact the data protection officer)"}[lang]
    if days % 365 == 0:
        years = days // 365
        return {"fr": f"{years} an{'s' if years > 1 else ''}",
                "en": f"{years} year{'s' if years > 1 else ''}"}[lang]
    return {"fr": f"{days} jour{'s' if days > 1 else ''}",
            "en": f"{days} day{'s' if days > 1 else ''}"}[lang]


@dataclass(frozen=True)
class Retention:
    measurements_days: int | None
    raw_days: int | None
    text: str


def retention(member: PublicMember, data_class: str, lang: Lang) -> Retention:
    """Measurements are kept for the class's days; raw messages for the shorter of the
    class's and `raw` (hypervision.retention applies the same rule)."""
    days = member.retention_days(data_class)
    raw = member.retention_days("raw")
    known = [d for d in (days, raw) if d is not None]
    raw_effective = min(known) if known else None
    if lang == "fr":
        text = f"Mesures : {duration(days, lang)}. Messages bruts reçus des capteurs : " \
               f"{duration(raw_effective, lang)}."
    else:
        text = f"Measurements: {duration(days, lang)}. Raw messages received from the " \
               f"sensors: {duration(raw_effective, lang)}."
    return Retention(days, raw_effective, text)


def recipients(member: PublicMember, operator: str | None, lang: Lang) -> list[str]:
    """Who receives the data: the member's own agents, the host, declared export recipients."""
    host = operator or {"fr": "le syndicat", "en": "the syndicate"}[lang]
    found = [
        {"fr": f"Les agents habilités de {member.name}",
         "en": f"Authorised staff of {member.name}"}[lang],
        {"fr": f"{host[0].upper()}{host[1:]}, qui exploite le réseau et héberge la plateforme "
               "(sous-traitant)",
         "en": f"{host[0].upper()}{host[1:]}, which runs the network and hosts the platform "
               "(processor)"}[lang],
    ]
    for r in member.recipients:
        if r.third_party:
            found.append({"fr": f"{r.name} (tiers : données pseudonymisées)",
                          "en": f"{r.name} (third party: pseudonymised data)"}[lang])
        else:
            found.append(r.name)
    return found


def hosting(settings: Settings, lang: Lang) -> str:
    if lang == "en" and settings.hosting_description_en:
        return settings.hosting_description_en
    return settings.hosting_description


@dataclass(frozen=True)
class Processing:
    """One entry of the register: the processing of one data class by one member."""

    data_class: str
    title: str
    purpose: str
    declared_purposes: list[str]
    legal_basis: str
    personal_data: bool
    data_subjects: str
    categories_of_data: str
    retention: Retention
    recipients: list[str]
    transfers: str
    security_measures: str
    devices: int


@dataclass(frozen=True)
class Register:
    member: str
    controller: dict[str, Any]
    dpo: dict[str, Any]
    hosting: str
    lang: Lang
    generated_on: str
    processing: list[Processing] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build(member: PublicMember, devices: Sequence[PublicDevice], settings: Settings,
          operator: str | None, lang: Lang = "fr", today: dt.date | None = None) -> Register:
    """The register of one member, from its public record and its active devices."""
    by_class: dict[str, list[PublicDevice]] = {}
    for d in devices:
        if d.active:
            by_class.setdefault(d.data_class, []).append(d)
    entries = []
    for data_class in sorted(by_class, key=lambda c: (not class_facts(c).personal, c)):
        facts = class_facts(data_class)
        group = by_class[data_class]
        declared = sorted({d.purpose.strip() for d in group if d.purpose.strip()})
        entries.append(Processing(
            data_class=data_class,
            title=pick(facts.title, lang),
            purpose=pick(facts.purpose, lang),
            declared_purposes=declared,
            legal_basis=legal_basis(None, member, data_class, lang),
            personal_data=facts.personal,
            data_subjects=pick(facts.subjects, lang),
            categories_of_data=pick(facts.categories, lang),
            retention=retention(member, data_class, lang),
            recipients=recipients(member, operator, lang),
            transfers=pick(TRANSFERS, lang),
            security_measures=pick(SECURITY, lang),
            devices=len(group),
        ))
    return Register(
        member=member.slug,
        controller={"name": member.name, "kind": member.kind, "siren": member.siren},
        dpo=dict(member.dpo or {}),
        hosting=hosting(settings, lang),
        lang=lang,
        generated_on=(today or dt.date.today()).isoformat(),
        processing=entries,
    )
