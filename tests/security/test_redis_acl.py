"""Finding 3 (Redis without a password), against a real redis-server started with the same
ACL arguments as docker-compose.yml's broker: the URL the platform builds from
HV_REDIS_USERNAME / HV_REDIS_PASSWORD opens it, a wrong password does not, and no
client user may run administration commands."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection
from pydantic import SecretStr

from hypervision.settings import Settings
from tests.conftest import PORT_BASE

PORT = PORT_BASE + 379 + 600  # beside the suite's own Redis, never on it


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder: Path = tmp_path_factory.mktemp("redis-acl")
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [server, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder),
         "--protected-mode", "no",
         "--user", "default", "off",
         "--user", "worker", "on", ">worker-secret", "~*", "&*", "+@all", "-@admin",
         "-flushall", "-flushdb",
         "--user", "health", "on", ">health-secret", "+ping"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis(port=PORT, username="health", password="health-secret").ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield PORT
    finally:
        process.terminate()
        process.wait(10)


def _settings(port: int, username: str | None, password: str | None) -> Settings:
    return Settings(secret_key=SecretStr("k" * 64), redis_port=port, redis_username=username,
                    redis_password=SecretStr(password) if password is not None else None)


def test_the_platforms_broker_url_opens_an_acl_protected_redis(acl_redis: int) -> None:
    url = _settings(acl_redis, "worker", "worker-secret").redis_url
    client = redis.Redis.from_url(url)
    client.rpush("celery", b"batch")
    assert client.lpop("celery") == b"batch"
    # Celery's transport reads the same URL.
    with Connection(url, connect_timeout=5) as conn:
        queue = conn.SimpleQueue("hv-acl-check")
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}
        queue.close()


def test_a_wrong_password_or_no_password_is_refused(acl_redis: int) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(_settings(acl_redis, "worker", "wrong").redis_url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(_settings(acl_redis, None, None).redis_url).get("x")


def test_a_client_user_cannot_administer_the_broker(acl_redis: int) -> None:
    client = redis.Redis.from_url(_settings(acl_redis, "worker", "worker-secret").redis_url)
    for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("ACL", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
