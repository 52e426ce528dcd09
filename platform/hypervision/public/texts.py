"""The words of the public pages, in French (default) and English.

Kept apart from the templates so that both languages can be read side by side and a
missing translation is a KeyError in tests, not a blank on a page.
"""

from __future__ import annotations

import datetime as dt

from hypervision.processing_register import Lang

UI: dict[Lang, dict[str, str]] = {
    "fr": {
        "site": "Capteurs connectés : transparence",
        "colon": "\u00a0:",
        "other_lang": "English",
        "other_lang_code": "en",
        "sensor_of": "Capteur de",
        "measures": "Ce que mesure ce capteur",
        "model": "Modèle",
        "model_description_note": "Description du modèle",
        "why": "Pourquoi ce capteur est installé",
        "installed_on": "Installé le",
        "place": "Lieu",
        "responsible": "Qui est responsable",
        "controller": "Responsable du traitement",
        "dpo": "Délégué à la protection des données",
        "email": "Courriel",
        "phone": "Téléphone",
        "legal_basis": "Base légale",
        "personal_yes": "Ces données peuvent concerner une personne (un abonné) : elles sont "
                        "protégées par le RGPD.",
        "personal_no": "Ces mesures portent sur un équipement ou un lieu, pas sur une personne.",
        "retention": "Durée de conservation",
        "retention_note": "Passé ce délai, les données sont supprimées automatiquement, "
                          "chaque jour.",
        "hosting": "Où sont hébergées les données",
        "path": "Le chemin des données",
        "path_sensor": "Le capteur envoie un court message radio (LoRaWAN), sans carte SIM "
                       "ni connexion Internet.",
        "path_gateway": "Une antenne du réseau LoRaWAN (passerelle) le reçoit.",
        "path_network": "Le serveur de réseau de {operator} l'achemine.",
        "path_network_syndicate": "Le serveur de réseau du syndicat l'achemine.",
        "path_platform": "La plateforme d'hypervision le décode et le stocke, séparément "
                         "des données des autres collectivités.",
        "path_member": "{member} consulte ses données (tableaux de bord, exports).",
        "not_shown": "Ce que cette page ne montre pas",
        "not_shown_text": "Aucune mesure n'est publiée ici : ni relevé, ni consommation, "
                          "ni historique. Cette page ne dépose aucun cookie et ne charge "
                          "aucun contenu extérieur.",
        "rights": "Vos droits",
        "rights_text": "Vous pouvez demander l'accès à vos données, leur rectification, leur "
                       "effacement ou la limitation de leur traitement, et vous opposer à ce "
                       "traitement, en écrivant au délégué à la protection des données "
                       "ci-dessus. Vous pouvez aussi adresser une réclamation à la CNIL "
                       "(www.cnil.fr).",
        "register_link": "Registre des traitements de {member}",
        "qr_alt": "QR code menant à cette page : {url}",
        "gone_title": "Capteur retiré",
        "gone_text": "Ce capteur n'est plus en service. Ses données sont conservées puis "
                     "supprimées selon les règles de {member}.",
        "not_found_title": "Page introuvable",
        "not_found_text": "Aucun capteur ne correspond à cette adresse. Vérifiez le lien ou "
                          "scannez à nouveau le QR code.",
        "register_title": "Registre des activités de traitement",
        "register_intro": "Ce registre liste les traitements de données réalisés avec les "
                          "capteurs connectés de {member}. Il est établi à partir des "
                          "déclarations de la collectivité.",
        "purpose": "Finalité",
        "declared_purposes": "Usages déclarés des capteurs",
        "subjects": "Personnes concernées",
        "categories": "Catégories de données",
        "recipients": "Destinataires",
        "transfers": "Transferts hors de l'Union européenne",
        "security": "Mesures de sécurité",
        "devices": "Capteurs en service",
        "json_version": "Version JSON de ce registre",
        "generated_on": "Établi le",
        "no_processing": "Aucun capteur en service.",
        "siren": "SIREN",
    },
    "en": {
        "site": "Connected sensors: transparency",
        "colon": ":",
        "other_lang": "Français",
        "other_lang_code": "fr",
        "sensor_of": "Sensor of",
        "measures": "What this sensor measures",
        "model": "Model",
        "model_description_note": "Model description (in French)",
        "why": "Why this sensor is here",
        "installed_on": "Installed on",
        "place": "Place",
        "responsible": "Who is responsible",
        "controller": "Data controller",
        "dpo": "Data protection officer",
        "email": "Email",
        "phone": "Phone",
        "legal_basis": "Legal basis",
        "personal_yes": "This data may relate to a person (a subscriber): it is protected by "
                        "the GDPR.",
        "personal_no": "These measurements concern equipment or a place, not a person.",
        "retention": "How long data is kept",
        "retention_note": "After that, data is deleted automatically, every day.",
        "hosting": "Where the data is hosted",
        "path": "The path of the data",
        "path_sensor": "The sensor sends a short radio message (LoRaWAN), with no SIM card "
                       "and no Internet connection.",
        "path_gateway": "An antenna of the LoRaWAN network (a gateway) receives it.",
        "path_network": "The network server of {operator} forwards it.",
        "path_network_syndicate": "The syndicate's network server forwards it.",
        "path_platform": "The hypervision platform decodes and stores it, apart from the "
                         "data of other authorities.",
        "path_member": "{member} looks at its data (dashboards, exports).",
        "not_shown": "What this page does not show",
        "not_shown_text": "No measurement is published here: no reading, no consumption, no "
                          "history. This page sets no cookie and loads nothing from "
                          "elsewhere.",
        "rights": "Your rights",
        "rights_text": "You may ask for access to your data, its correction or erasure, or "
                       "the restriction of its processing, and object to it, by writing to "
                       "the data protection officer above. You may also lodge a complaint "
                       "with the CNIL, the French data protection authority (www.cnil.fr).",
        "register_link": "Register of processing activities of {member}",
        "qr_alt": "QR code leading to this page: {url}",
        "gone_title": "Sensor removed",
        "gone_text": "This sensor is no longer in service. Its data is kept, then deleted, "
                     "according to the rules of {member}.",
        "not_found_title": "Page not found",
        "not_found_text": "No sensor matches this address. Check the link or scan the QR code "
                          "again.",
        "register_title": "Register of processing activities",
        "register_intro": "This register lists the processing of data done with the connected "
                          "sensors of {member}. It is generated from the authority's "
                          "declarations.",
        "purpose": "Purpose",
        "declared_purposes": "Declared uses of the sensors",
        "subjects": "Data subjects",
        "categories": "Categories of data",
        "recipients": "Recipients",
        "transfers": "Transfers outside the European Union",
        "security": "Security measures",
        "devices": "Sensors in service",
        "json_version": "JSON version of this register",
        "generated_on": "Generated on",
        "no_processing": "No sensor in service.",
        "siren": "SIREN",
    },
}

METRICS: dict[str, dict[Lang, str]] = {
    "water.index": {"fr": "l'index du compteur d'eau (volume consommé)",
                    "en": "the water meter index (volume used)"},
    "water.flow": {"fr": "le débit d'eau", "en": "the water flow"},
    "fill.distance": {"fr": "la distance jusqu'aux déchets", "en": "the distance to the waste"},
    "fill.level": {"fr": "le taux de remplissage", "en": "the fill level"},
    "air.co2": {"fr": "la concentration de CO2 dans l'air", "en": "the CO2 level in the air"},
    "air.temperature": {"fr": "la température", "en": "the temperature"},
    "air.humidity": {"fr": "l'humidité de l'air", "en": "the air humidity"},
    "battery.level": {"fr": "le niveau de sa pile", "en": "its battery level"},
    "battery.voltage": {"fr": "la tension de sa pile", "en": "its battery voltage"},
    "energy.active": {"fr": "l'énergie consommée", "en": "the energy used"},
    "power.active": {"fr": "la puissance électrique", "en": "the electric power"},
    "lamp.dim": {"fr": "le niveau de gradation de l'éclairage", "en": "the lighting dim level"},
    "lamp.on": {"fr": "l'allumage de l'éclairage", "en": "whether the light is on"},
}


def metric_label(metric: str, lang: Lang) -> str:
    labels = METRICS.get(metric)
    return labels[lang] if labels else metric


MONTHS: dict[Lang, tuple[str, ...]] = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}


def long_date(day: dt.date, lang: Lang) -> str:
    """'12 mars 2024' / '12 March 2024' (no locale needed on the server)."""
    first = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{first} {MONTHS[lang][day.month - 1]} {day.year}"
