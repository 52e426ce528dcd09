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
            if path and name not in data:
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


def _conninfo(**params: Any) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **{k: str(v) for k, v in params.items()})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
