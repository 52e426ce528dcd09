"""The platform's one typed configuration, read from the environment (see .env.example).

Nothing else in the code base reads environment variables. Every variable is prefixed
`HV_`, documented in `.env.example`, and may also be given as a file with `HV_<NAME>_FILE`
(Docker secrets). Required secrets have no default and placeholder values are refused, so
a misconfigured deployment fails at start-up rather than later.
"""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "please-change", "xxx"}


class Settings(BaseSettings):
    """All runtime configuration, with documented defaults (see `.env.example`)."""

    model_config = SettingsConfigDict(
        env_prefix="HV_",
        env_file=REPO_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # An optional secret passed empty (as docker compose does when unset) is unset.
        env_ignore_empty=True,
    )

    # Secrets. The key derives members' pseudonyms and Superset's local secrets; only the
    # processes that need it get it (not the ones parsing devices' payloads), and it
    # never appears in logs. Database roles' passwords do not derive from it: see
    # role_password.
    secret_key: SecretStr | None = Field(default=None, min_length=32)
    # Where each database role's random password is kept, one file per role (0600, in a
    # 0700 folder); HV_DATA_DIR/secrets when unset. `migrate` and `tenants apply` write
    # them, and copy each into a folder per process that needs it (role_secrets.py).
    role_secrets_dir: Path | None = None

    # Where the platform's own local services keep their data, sockets and logs.
    data_dir: Path = REPO_ROOT / "var"

    # PostgreSQL + TimescaleDB.
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_database: str = "hypervision"
    pg_superuser: str = "hv_admin"
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    # Memory and WAL of the local cluster. Empty shared_buffers: a quarter of the
    # machine's memory, between 128MB and 8GB. A larger max_wal_size spaces checkpoints
    # out, so fewer full-page images are written under a steady ingest load.
    pg_shared_buffers: str | None = Field(default=None, pattern=r"^[0-9]+(kB|MB|GB)$")
    pg_max_wal_size: str = Field(default="4GB", pattern=r"^[0-9]+(MB|GB)$")
    # Set to use an external PostgreSQL instead of the local cluster (migrations, tenancy).
    admin_database_url: SecretStr | None = None
    ingest_role: str = "hv_ingest"
    # Members placed on several database servers (hypervision.placement): a YAML file
    # naming each server, its connection and its role. Unset: one server, the one above,
    # named `primary`, holds the control catalogue and every member.
    database_servers_file: Path | None = None
    # Limits of the members' reader roles (dashboards, API reads, exports), set on the
    # roles themselves: a statement running longer is cancelled, and a session left idle
    # inside a transaction longer is closed, so no reader can hold locks or a snapshot.
    reader_statement_timeout: str = Field(default="5min", pattern=r"^[0-9]+(ms|s|min|h)$")
    reader_idle_in_transaction_timeout: str = Field(default="5min",
                                                    pattern=r"^[0-9]+(ms|s|min|h)$")

    # Redis (Celery broker) and Mosquitto.
    redis_host: str = "127.0.0.1"
    redis_port: int = 56379
    redis_db: int = 0
    # Redis ACL user and password of this process (docker-compose.yml gives each kind of
    # client its own); none for the local broker on loopback, required for one listening
    # on another address (hypervision.daemons.redis).
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 51883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = "hypervision-receiver"
    mqtt_topic: str = "application/+/device/+/event/+"
    # Several receivers (on several hosts) share the subscription: each event goes to one
    # of them (an MQTT shared subscription, `$share/<group>/<topic>`). Give each receiver
    # its own, stable HV_MQTT_CLIENT_ID: its persistent session holds what the broker
    # queued for it while it was away.
    mqtt_shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # How ChirpStack's integrations encode events: `json` (its default), `protobuf`
    # (`json = false`), or `auto`: told apart per message (JSON starts with `{`). The
    # HTTP integration's Content-Type decides when it names one of the two.
    chirpstack_encoding: Literal["auto", "json", "protobuf"] = "auto"

    # Receiver batching: a batch leaves when it holds batch_size events or its oldest
    # event has waited batch_max_wait seconds.
    batch_size: int = Field(default=500, ge=1, le=10000)
    batch_max_wait: float = Field(default=0.5, gt=0)
    max_payload_bytes: int = Field(default=65536, ge=1024)

    # HTTP integration endpoint (ChirpStack's HTTP integration posts here).
    http_host: str = "127.0.0.1"
    http_port: int = 8090
    http_integration_token: SecretStr | None = None

    # Celery workers.
    worker_concurrency: int = Field(default=2, ge=1)
    broker_visibility_timeout: int = Field(default=300, ge=1)
    task_max_retries: int = Field(default=5, ge=0)
    retry_backoff_max: float = Field(default=60.0, gt=0)

    # A frame replayed with the same DevEUI, fCnt and bytes within this window (seconds)
    # is a duplicate even under a new deduplicationId (ABP devices without fCnt checks).
    fcnt_guard_window: int = Field(default=600, ge=0)
    # A downlink ChirpStack has not transmitted (no `txack`) this many seconds after it was
    # queued becomes `expired` (hypervision.jobs.downlinks).
    downlink_expiry: int = Field(default=3600, ge=60)

    # Dead letters of no member (unknown devices, foreign applications, unparseable
    # bytes) are deleted this many days after they arrived; members' own follow `raw`.
    dead_letter_retention_days: int = Field(default=30, ge=1)

    # The pipeline's receipts of batches written on another database server than the
    # primary (docs/scale.md, "Outcomes and dead letters, exactly once") are kept this
    # many days: longer than any redelivery of a batch.
    ingest_receipt_days: int = Field(default=7, ge=1)

    # A member archive larger than this (bytes extracted) is refused by `tenant import`.
    import_max_bytes: int = Field(default=16 * 1024**3, ge=1024)

    # Tenant files.
    tenants_dir: Path = REPO_ROOT / "tenants"
    # The operator's device catalogue: model files and codecs added with `hypervision
    # models add`, next to the built-in ones (ingest/decode/README.md, "Operator catalogue").
    catalogue_dir: Path = REPO_ROOT / "catalogue"
    # Workers check the catalogue folder for changes at most this often (seconds) and
    # reload it without a restart.
    catalogue_reload_interval: float = Field(default=10.0, ge=0)
    # The syndicate's own declarations: gateways as assets, cost model, suppliers
    # (network/README.md).
    network_dir: Path = REPO_ROOT / "network"

    @model_validator(mode="before")
    @classmethod
    def _read_file_variants(cls, data: Any) -> Any:
        """Support `HV_<NAME>_FILE=/run/secrets/...` for every field."""
        if not isinstance(data, dict):
            return data
        for name in cls.model_fields:
            path = os.environ.get(f"HV_{name.upper()}_FILE")
            # The file wins over .env, not over the variable itself set in the environment.
            if path and f"HV_{name.upper()}" not in os.environ:
                data[name] = Path(path).read_text(encoding="utf-8").strip()
        return data

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDERS:
            raise ValueError(
                "HV_SECRET_KEY is a placeholder; generate one with `openssl rand -hex 32`"
            )
        return value

    # Derived values -------------------------------------------------------------------

    @property
    def pg_socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def redis_url(self) -> str:
        """The broker's URL; it carries the password when there is one: never log it."""
        auth = ""
        if self.redis_password is not None:
            from urllib.parse import quote

            auth = (f"{quote(self.redis_username or 'default', safe='')}:"
                    f"{quote(self.redis_password.get_secret_value(), safe='')}@")
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def key(self) -> bytes:
        """HV_SECRET_KEY, for the processes that need it (pseudonyms, Superset's local
        secrets); a clear error where it was not given."""
        if self.secret_key is None:
            raise RuntimeError("HV_SECRET_KEY is not set: this command needs it"
                               " (generate one with `openssl rand -hex 32`, see .env.example)")
        return self.secret_key.get_secret_value().encode()

    @property
    def role_secrets(self) -> Path:
        return self.role_secrets_dir or self.data_dir / "secrets"

    def role_password(self, role: str) -> str:
        """The password of a platform-managed database role: random, one per role, read
        from `<role_secrets>/<role>`. Only the superuser's side creates it
        (ensure_role_password: `migrate`, `tenants apply`); the other processes read the
        copies made for them (role_secrets.publish). Nothing derives it, so no single
        secret opens every role.
        """
        path = self._role_file(role)
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise RuntimeError(
                f"no password for database role {role} in {path.parent}: `hypervision"
                " tenants apply` writes it (and copies it where each process reads it)"
            ) from None

    def ensure_role_password(self, role: str) -> str:
        """The role's password, created (random, file mode 0600) if it has none yet: for
        the code that sets it on the role, as the superuser."""
        path = self._role_file(role)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.role_password(role)
        password = secrets.token_hex(32)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        return password

    def _role_file(self, role: str) -> Path:
        if not _ROLE.match(role):
            raise ValueError(f"not a role name: {role!r}")
        return self.role_secrets / role

    def admin_conninfo(self) -> str:
        """Superuser connection: migrations, tenancy. Local socket unless overridden."""
        if self.admin_database_url is not None:
            return self.admin_database_url.get_secret_value()
        return _conninfo(
            host=str(self.pg_socket_dir), port=self.pg_port, dbname=self.pg_database,
            user=self.pg_superuser,
        )

    def role_conninfo(self, role: str) -> str:
        """A password connection over TCP as one of the platform's login roles."""
        return _conninfo(
            host=self.pg_host, port=self.pg_port, dbname=self.pg_database, user=role,
            password=self.role_password(role),
        )

    def ingest_conninfo(self) -> str:
        return self.role_conninfo(self.ingest_role)

    # --- superset (dashboards, hypervision.superset) ---
    # Apache Superset's web server, in its own virtualenv (infra/superset/install.sh).
    superset_host: str = "127.0.0.1"
    superset_port: int = 58088
    # The address users open (a reverse proxy, say); http://superset_host:superset_port if unset.
    superset_public_url: str | None = None
    # Password of Superset's `admin` account; derived from secret_key when unset.
    superset_admin_password: SecretStr | None = None
    # Superset's own secret (signs its sessions, encrypts the connections it stores);
    # derived from HV_SECRET_KEY when unset. docker-compose.yml gives it to Superset alone.
    superset_secret_key: SecretStr | None = None
    # Superset's client secret at the platform (it signs people in through the platform);
    # derived from HV_SECRET_KEY when unset. Give the same value to the API and Superset
    # when they run apart (docker-compose.yml).
    superset_oauth_secret: SecretStr | None = None
    superset_workers: int = Field(default=2, ge=1)
    superset_venv: Path = REPO_ROOT / ".venv-superset"
    # Superset's metadata database in the platform's PostgreSQL, and its login role.
    superset_database: str = "superset"
    superset_db_role: str = "hv_superset"

    # --- transparency: public pages, QR codes, retention, open data (hypervision.public) ---
    # The address citizens reach the public pages at; QR codes on devices encode
    # <public_base_url>/d/<public id>, so it must not change once labels are printed.
    public_base_url: str = "http://127.0.0.1:8000"
    # Where the data is hosted, as shown on the public pages and in the register (French,
    # and English when set; French is shown when the English text is missing).
    hosting_description: str = (
        "Serveurs du syndicat, dans un centre de données situé en France (région Bretagne)."
    )
    hosting_description_en: str | None = None
    # Login role of the public pages: reads only the hv.public_* views (password derived
    # from secret_key).
    public_role: str = "hv_public"
    # Openly published aggregates suppress every group with fewer devices than this.
    opendata_k: int = Field(default=5, ge=2)

    # --- chirpstack (hypervision.chirpstack: provisioning, gateways, downlinks) ---
    # ChirpStack's gRPC API (host:port) and an admin API key created in ChirpStack's UI.
    chirpstack_api_url: str = "127.0.0.1:8080"
    chirpstack_api_token: SecretStr | None = None
    # The password `chirpstack secure-admin` gives ChirpStack's `admin` account in place of
    # its default `admin` (docker-compose.yml: before the proxy serves ChirpStack).
    chirpstack_admin_password: SecretStr | None = None
    # TLS towards the API; a private CA may be given as a PEM file.
    chirpstack_api_tls: bool = False
    chirpstack_api_ca_file: Path | None = None
    # Per-call deadline (s); attempts and base backoff (s) on UNAVAILABLE/DEADLINE_EXCEEDED.
    chirpstack_api_timeout: float = Field(default=10.0, gt=0)
    chirpstack_api_attempts: int = Field(default=5, ge=1)
    chirpstack_api_backoff: float = Field(default=0.5, gt=0)
    # What the platform declares in ChirpStack besides tenants/*.yaml (region, gateways...).
    chirpstack_network_file: Path = REPO_ROOT / "infra" / "chirpstack" / "network.yaml"
    # Devices' AppKeys (YAML `dev_eui: app_key`): a secret, outside the repository.
    chirpstack_keys_file: Path | None = None
    # Seconds between two reads of the gateways' state (GatewayService.List).
    chirpstack_gateway_sync_interval: int = Field(default=60, ge=10)

    # --- platform API (hypervision.api) ---
    # Where `hypervision api` listens; put a TLS reverse proxy in front of it.
    api_host: str = "127.0.0.1"
    api_port: int = 8070
    # Login role of the API (password derived from secret_key); member data is read with
    # each member's reader role, never with this one.
    api_role: str = "hv_api"
    # Lifetime of a token issued by the login endpoint, in hours.
    api_login_token_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Login attempts allowed per client address and per e-mail within 5 minutes.
    api_login_attempts: int = Field(default=10, ge=1)
    # Proxies whose X-Forwarded-For is trusted for the client address (comma-separated).
    api_forwarded_allow_ips: str = "127.0.0.1"
    # The address people open the console at (the TLS proxy, say); http://api_host:api_port
    # when unset. Superset sends people there to sign in (hypervision.superset.signin).
    platform_public_url: str | None = None
    # The console's session cookie carries the Secure flag (sent over HTTPS only). Turn it
    # off only to use the console over plain http on loopback (development, tests).
    console_secure_cookie: bool = True

    # --- single sign-on (hypervision.sso): one OpenID Connect provider, e.g. ProConnect ---
    # The provider's issuer URL (its discovery document is <issuer>/.well-known/openid-
    # configuration); unset: no single sign-on. Secret: HV_OIDC_CLIENT_SECRET_FILE.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # Shown on the sign-in button.
    oidc_name: str = "ProConnect"
    oidc_scopes: str = "openid email profile"
    # How a person is recognised: the verified e-mail, or the `sub` declared as
    # `sso_subject` in the tenant file. Nobody is ever created by signing in.
    oidc_match: Literal["email", "sub"] = "email"
    # `acr` values and `amr` entries that count as a second factor (comma-separated).
    oidc_mfa_acr: str = ""
    oidc_mfa_amr: str = "mfa"
    # ProConnect: the `siret` claim's SIREN must be the member's (identity.siren).
    oidc_check_siret: bool = False

    # --- analytics and alerts (hypervision.analytics, hypervision.alerts) ---
    # Seconds between two incremental rollup refreshes, and between two alert evaluations
    # (Celery beat); the lag of rollups and alerts is bounded by these.
    rollup_interval: int = Field(default=60, ge=5)
    # Days of simulated history `hypervision demo` sends through the pipeline before the
    # live simulation (0: none; a second run only fills the gap since the last one).
    demo_history_days: float = Field(default=30, ge=0, le=366)
    alerts_interval: int = Field(default=60, ge=5)
    # Outgoing mail for alert notifications (a relay inside the deployment).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "hypervision@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # Webhook bodies are signed (HMAC-SHA256, header X-Hypervision-Signature) when set.
    webhook_signing_key: SecretStr | None = None
    # Per attempt timeout (s), attempts before giving up, and capped exponential backoff (s).
    notify_timeout: float = Field(default=10.0, gt=0)
    notify_max_attempts: int = Field(default=6, ge=1)
    notify_backoff: float = Field(default=30.0, ge=0)
    notify_backoff_max: float = Field(default=3600.0, ge=0)

    # --- sharing (hypervision.sharing, docs/sharing.md) ---
    # The platform's SSH key for deliveries by SFTP (OpenSSH private key, no passphrase);
    # HV_DATA_DIR/secrets/delivery_ed25519 when unset, created on first use. Recipients
    # authorise its public key (`hypervision shares key`).
    delivery_ssh_key_file: Path | None = None
    # Attempts per delivery before it is logged as failed and the provider is alerted,
    # and the pause (s) between attempts (doubled each time).
    delivery_attempts: int = Field(default=3, ge=1, le=10)
    delivery_retry_pause: float = Field(default=5.0, ge=0)
    # Where the open data files and their DCAT-AP catalogue are published (served at
    # /opendata/ by the API); HV_DATA_DIR/opendata when unset.
    opendata_dir: Path | None = None
    # The catalogue's links start with HV_PUBLIC_BASE_URL (see the public pages).
    # --- incidents (hypervision.syndicate.incidents, docs/syndicate.md) ---
    # A legal clock (NIS2 24 h / 72 h / one month, GDPR 72 h) alerts when this share of
    # its time is left (0.25: 6 h before a 24 h deadline), and again when it runs out.
    incident_warning_share: float = Field(default=0.25, gt=0, lt=1)
    # Incidents the platform opens itself: nothing ingested for this many minutes after
    # traffic in the past day; no full backup for this many hours once one has run; a
    # member's rows exported in a day above this factor times its daily average of the 30
    # days before, and above the minimum.
    incident_ingest_silence_minutes: int = Field(default=30, ge=1)
    incident_backup_max_age_hours: int = Field(default=26, ge=1)
    incident_export_jump_factor: float = Field(default=10.0, gt=1)
    incident_export_jump_min_rows: int = Field(default=10_000, ge=1)

    # Radio coverage (hypervision.syndicate.coverage): a device whose margin (best SNR
    # minus the SNR its spreading factor needs) stays under this many dB for this many
    # days gets an alert.
    coverage_margin_db: float = 5.0
    coverage_margin_days: int = Field(default=7, ge=1)

    # --- backups (hypervision.backup, `hypervision backup`) ---
    # Where archives are kept; HV_DATA_DIR/backups when unset. Copy them off the host too.
    backup_dir: Path | None = None
    # Rotation: keep the newest archive of each of the last N days and of the last M ISO
    # weeks (per scope: the full archives, and each member's own archives).
    # Each backup appends the audit chain's head here (HV_BACKUP_DIR/audit-anchors.log
    # when unset); keep a copy off the host: `audit verify --anchors FILE` checks it.
    audit_anchor_file: Path | None = None
    backup_keep_daily: int = Field(default=7, ge=1)
    backup_keep_weekly: int = Field(default=4, ge=0)
    # When Celery beat starts the nightly full archive (UTC).
    backup_hour: int = Field(default=2, ge=0, le=23)
    backup_minute: int = Field(default=30, ge=0, le=59)
    # Archives are encrypted with age for these public keys (`age1...`, separated by
    # commas, spaces or new lines; `#` starts a comment), e.g. from a file with
    # HV_BACKUP_AGE_RECIPIENTS_FILE. `hypervision backup keygen` makes a key pair.
    backup_age_recipients: str = ""
    # The private key (age identity file) that `hypervision backup restore` decrypts with.
    # Keep it off the backup volume (and off this host, with the operators); a restore
    # refuses one inside the backup folder. `--identity` overrides it.
    backup_age_identity_file: Path | None = None
    # Without recipients a backup is refused, unless this says plain archives are wanted.
    backup_unencrypted: bool = False


def _conninfo(**params: Any) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **{k: str(v) for k, v in params.items()})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # values come from the environment
