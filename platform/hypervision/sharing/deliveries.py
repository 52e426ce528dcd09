"""Scheduled deliveries of a sharing agreement: files pushed to the recipient.

An agreement with a `delivery:` (tenancy.spec.Delivery) is delivered daily or weekly by
the job `hypervision.jobs.sharing.send_deliveries`. One delivery:

1. reads, in one REPEATABLE READ transaction, the agreement's `measurements` view (the
   same scope the recipient reads in SQL) for the rows written since the last delivery
   sent, and the snapshot it read (export cursors, hypervision.export.cursor);
2. encodes them as CSV, Parquet or JSON Lines (hypervision.export.formats);
3. pushes the file by SFTP (the platform's SSH key; the server's host key must be the one
   declared) or POSTs it to the recipient's URL with an HMAC-SHA256 signature
   (`X-Hypervision-Signature: sha256=<hex>`, key from `signing_key`), trying
   HV_DELIVERY_ATTEMPTS times with a doubling pause;
4. logs it in `hv.share_deliveries` (sent with its cursor, or failed with the error), with
   an entry in both members' journals; a failed one e-mails the provider's technical
   contact (else its DPO). The next delivery starts from the last one sent, so nothing
   is lost when one fails.
See docs/sharing.md, "Deliveries".
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import paramiko
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from hypervision import audit, dump
from hypervision.alerts.notify import DeliveryError, send_email
from hypervision.export import cursor
from hypervision.export.formats import Column, encoder
from hypervision.settings import Settings
from hypervision.tenancy.spec import Delivery

logger = logging.getLogger(__name__)
PERIODS = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(days=7)}
EXTENSIONS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}
COLUMNS = (Column("time", "time"), Column("device", "text"), Column("metric", "text"),
           Column("value", "float"), Column("unit", "text"))
ACTOR = "system:sharing-delivery"


def ssh_key(settings: Settings) -> paramiko.Ed25519Key:
    """The platform's delivery key, created (mode 0600) on first use."""
    path = settings.delivery_ssh_key_file or settings.role_secrets / "delivery_ed25519"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption())
        path.touch(mode=0o600)
        path.write_bytes(pem)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def public_key(settings: Settings) -> str:
    """The line a recipient adds to its `authorized_keys`."""
    key = ssh_key(settings)
    return f"{key.get_name()} {key.get_base64()} hypervision-delivery"


def signing_key(settings: Settings, provider: str, name: str) -> bytes:
    """The HMAC key of one agreement's deliveries by URL, derived from HV_SECRET_KEY:
    the provider hands it to the recipient (`hypervision shares key --agreement`)."""
    return hmac.new(settings.key(), f"delivery:{provider}/{name}".encode(),
                    hashlib.sha256).digest()


def signature(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass
class Outcome:
    agreement: str
    status: str
    rows: int
    file_name: str
    error: str | None = None


def due(conn: psycopg.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Agreements in force with a delivery whose last one sent is a period old (or none)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT a.*, (SELECT max(started_at) FROM hv.share_deliveries d
                         WHERE d.agreement_id = a.id AND d.status = 'sent') AS last_sent
            FROM hv.share_agreements a
            WHERE a.state = 'active' AND jsonb_typeof(a.spec -> 'delivery') = 'object'
              AND a.starts_at <= %(now)s AND a.ends_at > %(now)s
            ORDER BY a.id
            """, {"now": now}).fetchall()
    return [r for r in rows if r["last_sent"] is None
            or now - r["last_sent"] >= PERIODS[r["spec"]["delivery"]["schedule"]]]


def _instance(conn: psycopg.Connection, provider: str) -> str:
    """Which copy of the provider's schema the agreement's views read (tenant migration
    2602): the cursors of the deliveries name it."""
    row = conn.execute("SELECT schema_name FROM hv.members WHERE slug = %s",
                       (provider,)).fetchone()
    assert row is not None  # an agreement's provider is a member
    return dump.schema_instance(conn, row[0]).id


def _last_cursor(conn: psycopg.Connection, agreement: int,
                 instance: str) -> cursor.Snapshot | None:
    """The last sent delivery's cursor; None (deliver everything again) when there is none
    or when it was read from another copy of the provider's data, whose transaction ids
    mean nothing here."""
    row = conn.execute("SELECT cursor FROM hv.share_deliveries WHERE agreement_id = %s"
                       " AND status = 'sent' ORDER BY id DESC LIMIT 1", (agreement,)).fetchone()
    if row is None:
        return None
    last = cursor.decode(row[0])
    if last.instance not in (None, instance):
        logger.warning("delivery %d: the provider's data is a new copy; delivered whole",
                       agreement)
        return None
    return last.snapshot


def read(conn: psycopg.Connection, agreement: dict[str, Any], since: cursor.Snapshot | None,
         instance: str) -> tuple[list[tuple[Any, ...]], str]:
    """The rows written since `since`, and the cursor of this read. The read goes through
    the agreement's view and gate: it is checked and journalled like any other."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if since is not None:
        params["xmax"] = since.xmax
        params["xip"] = list(since.in_progress)
        where.append(sql.SQL("(ingested_xid >= %(xmax)s OR ingested_xid = ANY(%(xip)s))"))
    query = sql.SQL("SELECT time, device, metric, value, unit FROM {} {} ORDER BY time,"
                    " device, metric").format(
        sql.Identifier(agreement["schema_name"], "measurements"),
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        rows = conn.execute(query, params).fetchall()
    assert snapshot is not None
    return rows, cursor.encode(cursor.Snapshot.parse(snapshot[0]), instance)


def encode(fmt: str, rows: list[tuple[Any, ...]]) -> bytes:
    enc = encoder(fmt, COLUMNS)
    out = io.BytesIO()
    for start in range(0, len(rows), 5000):
        for chunk in enc.feed(rows[start:start + 5000]):
            out.write(chunk)
    for chunk in enc.finish():
        out.write(chunk)
    return out.getvalue()


def push_sftp(settings: Settings, delivery: Delivery, file_name: str, body: bytes) -> str:
    """Upload by SFTP, written under a temporary name then renamed: the recipient never
    picks up half a file. Refuses a server whose host key is not the declared one."""
    target = delivery.sftp
    assert target is not None
    kind, _, blob = target.host_key.strip().partition(" ")
    expected = paramiko.PKey.from_type_string(kind, base64.b64decode(blob.split()[0]))
    client = paramiko.SSHClient()
    hostname = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    client.get_host_keys().add(hostname, expected.get_name(), expected)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(target.host, port=target.port, username=target.user,
                       pkey=ssh_key(settings), allow_agent=False, look_for_keys=False,
                       timeout=settings.notify_timeout)
        with client.open_sftp() as sftp:
            final = f"{target.path.rstrip('/')}/{file_name}"
            partial = final + ".part"
            with sftp.open(partial, "wb") as handle:
                handle.write(body)
            sftp.posix_rename(partial, final)
    except (paramiko.SSHException, OSError) as exc:
        raise DeliveryError(f"SFTP: {type(exc).__name__}: {exc}", permanent=False) from None
    finally:
        client.close()
    return f"sftp://{target.user}@{target.host}:{target.port}/{final.lstrip('/')}"


def push_url(settings: Settings, delivery: Delivery, key: bytes, file_name: str, fmt: str,
             body: bytes) -> str:
    assert delivery.url is not None
    headers = {"Content-Type": {"csv": "text/csv", "jsonl": "application/x-ndjson",
                                "parquet": "application/vnd.apache.parquet"}[fmt],
               "User-Agent": "hypervision-delivery", "X-Hypervision-File": file_name,
               "X-Hypervision-Signature": signature(key, body)}
    try:
        response = httpx.post(delivery.url, content=body, headers=headers,
                              timeout=settings.notify_timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"HTTP: {type(exc).__name__}: {exc}", permanent=False) from None
    if not response.is_success:
        code = response.status_code
        raise DeliveryError(f"HTTP {code}", permanent=400 <= code < 500
                            and code not in (408, 429))
    return delivery.url


def deliver(conn: psycopg.Connection, agreement: dict[str, Any], settings: Settings,
            now: dt.datetime, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Read, encode, push (with retries) and log one delivery of one agreement."""
    delivery = Delivery.model_validate(agreement["spec"]["delivery"])
    name = f"{agreement['provider']}/{agreement['name']}"
    instance = _instance(conn, agreement["provider"])
    since = _last_cursor(conn, agreement["id"], instance)
    rows, new_cursor = read(conn, agreement, since, instance)
    body = encode(delivery.format, rows)
    file_name = (f"{agreement['provider']}_{agreement['name']}_"
                 f"{now.strftime('%Y%m%dT%H%M%SZ')}.{EXTENSIONS[delivery.format]}")
    key = signing_key(settings, agreement["provider"], agreement["name"])
    attempts, error, target = 0, None, delivery.url or ""
    while attempts < settings.delivery_attempts:
        attempts += 1
        try:
            if delivery.sftp is not None:
                target = push_sftp(settings, delivery, file_name, body)
            else:
                target = push_url(settings, delivery, key, file_name, delivery.format, body)
            error = None
            break
        except DeliveryError as exc:
            error = str(exc)
            logger.warning("delivery %s, attempt %d: %s", name, attempts, error)
            if exc.permanent:
                break
            if attempts < settings.delivery_attempts:
                sleep(settings.delivery_retry_pause * 2 ** (attempts - 1))
    if delivery.sftp is not None and error is not None:
        s = delivery.sftp
        target = f"sftp://{s.user}@{s.host}:{s.port}/{s.path.strip('/')}/{file_name}"
    status = "sent" if error is None else "failed"
    with conn.transaction():
        conn.execute(
            "INSERT INTO hv.share_deliveries (agreement_id, finished_at, status, attempts,"
            " rows, format, target, file_name, sha256, cursor, error)"
            " VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (agreement["id"], status, attempts, len(rows), delivery.format, target, file_name,
             hashlib.sha256(body).hexdigest(), new_cursor if error is None else None, error))
        for member, side in ((agreement["provider"], "provider"),
                             (agreement["recipient_member"], "recipient")):
            if member is not None:
                audit.record(conn, actor=ACTOR, member=member,
                             action="share.delivered" if error is None
                             else "share.delivery-failed",
                             target=name, rows=len(rows), source="job",
                             params={"side": side, "file": file_name, "target": target,
                                     "attempts": attempts, "error": error})
    if error is not None:
        _alert(conn, settings, agreement, file_name, error)
    return Outcome(name, status, len(rows), file_name, error)


def _alert(conn: psycopg.Connection, settings: Settings, agreement: dict[str, Any],
           file_name: str, error: str) -> None:
    """E-mail the provider's technical contact (else its DPO); a mail that cannot be sent
    is logged, the delivery log and journals hold the failure whatever happens."""
    row = conn.execute("SELECT coalesce(spec -> 'contacts' -> 'technical' ->> 'email',"
                       " spec -> 'contacts' -> 'dpo' ->> 'email') FROM hv.members"
                       " WHERE slug = %s", (agreement["provider"],)).fetchone()
    to = row[0] if row else None
    logger.error("delivery %s/%s failed: %s", agreement["provider"], agreement["name"], error)
    if not to:
        return
    body = (f"La livraison {file_name} de l'accord de partage « {agreement['name']} » a"
            f" échoué après {settings.delivery_attempts} tentatives : {error}\n\n"
            "Elle sera retentée à la prochaine échéance, depuis la dernière livraison"
            " réussie : aucune donnée n'est perdue.\n")
    try:
        send_email(settings, to, f"[Hypervision] Livraison échouée : {agreement['name']}",
                   body)
    except DeliveryError as exc:
        logger.error("the alert about %s could not be e-mailed: %s", file_name, exc)


def run_due(conn: psycopg.Connection, settings: Settings,
            now: dt.datetime | None = None) -> list[Outcome]:
    """Every delivery due now."""
    now = now or dt.datetime.now(dt.UTC)
    outcomes = []
    for agreement in due(conn, now):
        try:
            outcomes.append(deliver(conn, agreement, settings, now))
        except Exception:
            # One agreement's unexpected error (its view dropped by hand...) must not
            # stop the others' deliveries; it is due again at the next run.
            logger.exception("delivery of %s/%s stopped", agreement["provider"],
                             agreement["name"])
    return outcomes


def log_of(conn: psycopg.Connection, member: str) -> list[dict[str, Any]]:
    """The delivery log of the agreements a member grants or receives, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.id, a.provider, a.name AS agreement, a.recipient_member,"
            " a.recipient_partner, d.started_at, d.finished_at, d.status, d.attempts,"
            " d.rows, d.format, d.target, d.file_name, d.sha256, d.error"
            " FROM hv.share_deliveries d JOIN hv.share_agreements a ON a.id = d.agreement_id"
            " WHERE a.provider = %(m)s OR a.recipient_member = %(m)s ORDER BY d.id DESC",
            {"m": member}).fetchall()

