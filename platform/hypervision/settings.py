"""The platform's one typed configuration, read from the environment (see .env.example).

Nothing else in the code base reads environment variables. Every variable is prefixed
`HV_`, documented in `.env.example`, and may also be given as a file with `HV_<NAME>_FILE`
(Docker secrets). Required secrets have no default and placeholder values are refused, so
a misconfigured deployment fails at start-up rather than later.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
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

    # Secrets. The key derives the local roles' passwords; it never appears in logs.
    secret_key: SecretStr = Field(min_length=32)

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

    # Redis (Celery broker) and Mosquitto.
    redis_host: str = "127.0.0.1"
    redis_port: int = 56379
    redis_db: int = 0
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 51883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = "hypervision-receiver"
    mqtt_topic: str = "application/+/device/+/event/+"

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

    # Tenant files.
    tenants_dir: Path = REPO_ROOT / "tenants"

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
    def _refuse_placeholders(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip().lower() in PLACEHOLDERS:
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
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def role_password(self, role: str) -> str:
        """The password of a platform-managed database role, derived from the secret key.

        Deriving instead of storing means no password file to protect or lose; rotating
        HV_SECRET_KEY and re-applying tenants rotates every role's password.
        """
        key = self.secret_key.get_secret_value().encode()
        return hmac.new(key, f"pg-role:{role}".encode(), hashlib.sha256).hexdigest()

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

    # --- analytics and alerts (hypervision.analytics, hypervision.alerts) ---
    # Seconds between two incremental rollup refreshes, and between two alert evaluations
    # (Celery beat); the lag of rollups and alerts is bounded by these.
    rollup_interval: int = Field(default=60, ge=5)
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

    # --- backups (hypervision.backup, `hypervision backup`) ---
    # Where archives are kept; HV_DATA_DIR/backups when unset. Copy them off the host too.
    backup_dir: Path | None = None
    # Rotation: keep the newest archive of each of the last N days and of the last M ISO
    # weeks (per scope: the full archives, and each member's own archives).
    backup_keep_daily: int = Field(default=7, ge=1)
    backup_keep_weekly: int = Field(default=4, ge=0)
    # When Celery beat starts the nightly full archive (UTC).
    backup_hour: int = Field(default=2, ge=0, le=23)
    backup_minute: int = Field(default=30, ge=0, le=59)


def _conninfo(**params: Any) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **{k: str(v) for k, v in params.items()})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
