"""Notifications of alerts by e-mail (SMTP) and webhook (HTTP POST of JSON), with retries
(see alerts/README.md, "Notifications").

Opening an alert writes one row per recipient in alert_notifications (lifecycle.py).
`deliver_due` sends the rows that are due:
1. claim up to `batch` due rows with a conditional UPDATE (FOR UPDATE SKIP LOCKED): the
   attempt is counted and the row is leased (not due again) for a while, so two workers
   never send the same notification at the same time;
2. send each one outside any transaction;
3. record the outcome: `sent`; or, after a permanent error (an SMTP 5xx reply, an HTTP
   4xx other than 408/429) or the last allowed attempt, `failed`; or else due again after
   a capped exponential backoff with jitter (HV_NOTIFY_BACKOFF, HV_NOTIFY_BACKOFF_MAX).
Delivery is at least once: a worker killed between sending and recording sends again
when the lease ends; webhook receivers can recognise a repeat by X-Hypervision-Delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from hypervision.analytics.members import Member
from hypervision.settings import Settings

SEVERITY_FR = {"info": "Information", "warning": "Avertissement", "critical": "Critique"}
# How long a claimed notification stays leased, in multiples of the per-attempt timeout.
LEASE_TIMEOUTS = 3


class DeliveryError(Exception):
    """A notification could not be delivered; `permanent` ones are not retried."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def backoff(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt, after `attempts` failed ones (jitter: 50-100 %)."""
    r = rng or random
    return min(cap, base * 2.0 ** max(0, attempts - 1)) * r.uniform(0.5, 1.0)


def send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    """One message through the configured SMTP relay."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="hypervision")
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.notify_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password is not None:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"recipient refused: {codes}",
                            permanent=all(c >= 500 for c in codes)) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                            permanent=exc.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", permanent=False) from None


def signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(settings: Settings, url: str, payload: dict[str, Any], delivery: str) -> None:
    """POST the payload as JSON; 2xx is success."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "hypervision-alerts",
               "X-Hypervision-Delivery": delivery}
    if settings.webhook_signing_key is not None:
        headers["X-Hypervision-Signature"] = signature(
            settings.webhook_signing_key.get_secret_value(), body)
    try:
        response = httpx.post(url, content=body, headers=headers,
                              timeout=settings.notify_timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"HTTP: {type(exc).__name__}: {exc}", permanent=False) from None
    if response.is_success:
        return
    code = response.status_code
    permanent = 400 <= code < 500 and code not in (408, 429)
    raise DeliveryError(f"HTTP {code}", permanent=permanent)


def payload(m: Member, member_name: str, alert: dict[str, Any]) -> dict[str, Any]:
    """The webhook body: the alert as JSON."""
    keys = ("id", "rule", "dev_eui", "device_name", "condition", "metric", "threshold",
            "severity", "state", "message", "value", "since", "opened_at")
    return {
        "event": "alert.opened",
        "member": {"slug": m.slug, "name": member_name},
        "alert": {k: (alert[k].isoformat() if isinstance(alert.get(k), dt.datetime)
                      else alert.get(k)) for k in keys},
    }


def email_text(m: Member, member_name: str, alert: dict[str, Any],
               timezone: str = "Europe/Paris") -> tuple[str, str]:
    """Subject and body, in French."""
    zone = ZoneInfo(timezone)

    def local(t: dt.datetime | None) -> str:
        return t.astimezone(zone).strftime("%d/%m/%Y %H:%M") if t else "?"

    severity = SEVERITY_FR.get(alert["severity"], alert["severity"])
    if alert.get("condition") in ("incident", "incident_deadline"):
        # An incident's alert (hypervision.syndicate.incidents): no device, a legal clock.
        incident = alert["rule"].removeprefix("incident:")
        return (f"[Hypervision] {severity} : incident n°{incident} — {alert['dev_eui']}",
                "\n".join([alert["message"], "", f"Membre : {member_name}",
                           f"Dossier : hypervision incidents show {incident}",
                           f"Brouillons : hypervision incidents drafts {incident}", "",
                           "Ce message est envoyé une seule fois par échéance."]))
    device = alert.get("device_name") or alert["dev_eui"]
    subject = f"[Hypervision] {severity} : {alert['rule']} — {device}"
    body = "\n".join([
        f"Alerte « {alert['rule']} » ouverte le {local(alert['opened_at'])}",
        f"Membre : {member_name}",
        f"Capteur : {device} ({alert['dev_eui']})",
        f"Gravité : {severity}",
        f"Constat : {alert['message']}",
        f"Depuis : {local(alert['since'])}",
        "",
        f"Prendre en compte : hypervision alerts ack {m.slug} {alert['id']}",
        f"Fermer : hypervision alerts close {m.slug} {alert['id']}",
        "",
        "Ce message est envoyé une seule fois par alerte ouverte.",
    ])
    return subject, body


@dataclass
class Delivery:
    member: str
    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


Sender = Callable[[Settings, dict[str, Any], Member, str], None]


def _send(settings: Settings, note: dict[str, Any], m: Member, member_name: str) -> None:
    alert = note["alert"]
    if note["channel"] == "email":
        subject, body = email_text(m, member_name, alert, note["timezone"])
        send_email(settings, note["target"], subject, body)
    else:
        send_webhook(settings, note["target"], payload(m, member_name, alert),
                     f"{m.slug}-{note['id']}")


def deliver_due(
    admin: psycopg.Connection, m: Member, settings: Settings, batch: int = 100,
    send: Sender = _send, timezone: str = "Europe/Paris",
    catalogue: psycopg.Connection | None = None,
) -> Delivery:
    """Steps 1-3 of the module docstring for one member."""
    s = sql.Identifier(m.schema)
    result = Delivery(m.slug)
    lease = settings.notify_timeout * LEASE_TIMEOUTS
    with admin.transaction(), admin.cursor(row_factory=dict_row) as cur:
        claimed = cur.execute(
            sql.SQL(
                """
                UPDATE {s}.alert_notifications n
                SET attempts = n.attempts + 1, next_attempt_at = now() + make_interval(secs => %s)
                WHERE n.id IN (
                    SELECT id FROM {s}.alert_notifications
                    WHERE state = 'pending' AND next_attempt_at <= now()
                    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING n.id, n.alert_id, n.channel, n.target, n.attempts
                """
            ).format(s=s),
            (lease, batch),
        ).fetchall()
        if not claimed:
            return result
        alerts = {
            a["id"]: a
            for a in cur.execute(
                sql.SQL(
                    """
                    SELECT a.*, d.name AS device_name FROM {s}.alerts a
                    LEFT JOIN {s}.analytics_devices d USING (dev_eui)
                    WHERE a.id = ANY(%s)
                    """
                ).format(s=s),
                ([c["alert_id"] for c in claimed],),
            ).fetchall()
        }
        # The member's name is in the catalogue, on the primary (`catalogue`; `admin`, on
        # the member's server, when the member is on the primary).
        name_row = (catalogue or admin).execute("SELECT name FROM hv.members WHERE slug = %s",
                                                (m.slug,)).fetchone()
    member_name = name_row[0] if name_row else m.slug
    for note in sorted(claimed, key=lambda n: n["id"]):
        note = {**note, "alert": alerts[note["alert_id"]], "timezone": timezone}
        try:
            send(settings, note, m, member_name)
        except DeliveryError as exc:
            last = exc.permanent or note["attempts"] >= settings.notify_max_attempts
            wait = backoff(note["attempts"], settings.notify_backoff, settings.notify_backoff_max)
            admin.execute(
                sql.SQL(
                    """
                    UPDATE {s}.alert_notifications
                    SET state = CASE WHEN %(last)s THEN 'failed' ELSE 'pending' END,
                        last_error = %(error)s,
                        next_attempt_at = now() + make_interval(secs => %(wait)s)
                    WHERE id = %(id)s
                    """
                ).format(s=s),
                {"last": last, "error": str(exc)[:500], "wait": wait, "id": note["id"]},
            )
            (result.failed if last else result.retried).append(note["id"])
            continue
        admin.execute(
            sql.SQL("UPDATE {s}.alert_notifications SET state = 'sent', sent_at = now(),"
                    " last_error = NULL WHERE id = %s").format(s=s),
            (note["id"],),
        )
        result.sent.append(note["id"])
    return result
