"""docker-compose.yml and the images' Dockerfiles, checked as files.

The stack is also started for real (tests/deploy/test_stack.py, which needs Docker);
these checks need nothing but the files, and run everywhere. The file is checked as
data: parsed with PyYAML (merge keys resolved, as compose does), validated against the
Compose Specification's JSON schema (the copy shipped by check-jsonschema), then held to
the deployment's rules. Each rule's checker is also shown a document that
breaks it, so that a checker that lets everything through cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
# Every image's Dockerfile (the platform's, and one per infrastructure service).
DOCKERFILES = [DOCKERFILE, *sorted((REPO / "infra" / "docker").glob("*/Dockerfile"))]
ENV_EXAMPLE = REPO / ".env.example"

PUBLISHING = {"proxy": {"443/tcp", "80/tcp"}, "chirpstack-gateway-bridge": {"1700/udp"}}
# Where each stateful service keeps its data, inside its container.
STATEFUL = {
    "timescaledb": "/var/lib/postgresql/data",
    "redis": "/data",
    "chirpstack-postgres": "/var/lib/postgresql/data",
    "chirpstack-redis": "/data",
    "mosquitto": "/mosquitto/data",
    "beat": "/var/lib/hypervision",
    "superset": "/var/lib/hypervision",
    "jobs": "/var/backups/hypervision",
}
# Images whose upstream numbers releases major.minor (PostgreSQL 15.19, Debian 12.15):
# for them two numbers are an exact version; for every other image three are needed.
TWO_PART_VERSIONS = {"postgres", "debian"}
_VERSION_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-[A-Za-z0-9._-]+)?$")
_INTERPOLATION = re.compile(
    r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(?:^|_)KEY$|(?:^|_)AUTH$",
                          re.IGNORECASE)
# `--password x`, `--requirepass x`, `password=x`, `secret: x` in a command or a value.
_CREDENTIAL = re.compile(r"(?i)(?:--(?:requirepass|password|passwd|secret|token)[ =]+"
                         r"|\b(?:password|passwd|secret|token)[=:]\s*)(\"?)([^\s\"]+)\1")


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def strings(value: Any) -> list[str]:
    """Every string scalar in a parsed document (keys included), comments excluded."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# The rules, as functions returning what breaks them ----------------------------------------


def unpinned_images(doc: dict[str, Any], project_version: str) -> list[str]:
    problems = []
    for name, service in doc["services"].items():
        image = service.get("image")
        if image is None:
            problems.append(f"{name}: no image")
            continue
        problems.extend(f"{name}: {p}" for p in image_pin_problems(image, project_version))
    return problems


def image_pin_problems(image: str, project_version: str) -> list[str]:
    reference, _, digest = image.partition("@")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return [f"{image}: malformed digest"]
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return [f"{image}: no tag"]
    base = repository.rsplit("/", 1)[-1]
    if base.startswith("hypervision"):
        return [] if tag == project_version else [
            f"{image}: the platform's image must carry the project's version {project_version}"]
    match = _VERSION_TAG.match(tag)
    if match is None:
        return [f"{image}: tag {tag!r} is not a version"]
    if match.group(3) is None and base not in TWO_PART_VERSIONS:
        return [f"{image}: tag {tag!r} names a series, not a release"]
    return []


def one_shot(doc: dict[str, Any], name: str) -> bool:
    """A job that runs to completion: `restart: "no"` and awaited by another service."""
    service = doc["services"][name]
    awaited = any(
        isinstance(other.get("depends_on"), dict)
        and other["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"
        for other in doc["services"].values()
    )
    return service.get("restart") == "no" and awaited


def missing_health_checks(doc: dict[str, Any]) -> list[str]:
    problems = []
    for name, service in doc["services"].items():
        if one_shot(doc, name):
            continue
        check = service.get("healthcheck")
        if not check or check.get("disable") or not check.get("test") \
                or check["test"] in (["NONE"], "NONE"):
            problems.append(name)
    return problems


def published_ports(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Container port/protocol published on the host, per service."""
    result: dict[str, set[str]] = {}
    for name, service in doc["services"].items():
        if service.get("network_mode") == "host":
            result.setdefault(name, set()).add("network_mode: host")
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                target = f"{port['target']}/{port.get('protocol', 'tcp')}"
            else:
                text = str(port)
                protocol = text.split("/", 1)[1] if "/" in text else "tcp"
                target = f"{text.split('/', 1)[0].rsplit(':', 1)[-1]}/{protocol}"
            result.setdefault(name, set()).add(target)
    return result


def secret_literals(doc: dict[str, Any]) -> list[str]:
    """Values that look like a secret written in the file rather than taken from `${...}`."""
    problems = []
    for name, service in doc["services"].items():
        for key, value in environment(service).items():
            # A folder or file of secrets (HV_ROLE_SECRETS_DIR) is a path, not a secret.
            if _SECRET_NAME.search(key) and not key.endswith(("_DIR", "_FILE")) and value \
                    and not _INTERPOLATION.search(value):
                problems.append(f"{name}: {key} is a literal")
            if "://" in value:
                problems.extend(f"{name}: {key}: {p}" for p in url_password_literals(value))
    # Commands given as lists are read as the command lines they make.
    lines = [" ".join(map(str, value)) for service in doc["services"].values()
             for value in (service.get("command"), service.get("entrypoint"),
                           (service.get("healthcheck") or {}).get("test"))
             if isinstance(value, list)]
    for text in [*strings(doc), *lines]:
        problems.extend(url_password_literals(text))
        # What `${NAME:?message}` says is no value: leave only `$` in its place.
        scrubbed = re.sub(r"\$\{[^}]*\}", "$", text)
        for match in _CREDENTIAL.finditer(scrubbed):
            if "$" not in match.group(2):
                problems.append(f"literal credential in {text!r}")
    return sorted(set(problems))


def url_password_literals(text: str) -> list[str]:
    return [f"password written in {text!r}"
            for password in re.findall(r"://[^/:@\s]+:([^@\s]+)@", text)
            if not _INTERPOLATION.search(password)]


def variables_used(doc: dict[str, Any]) -> set[str]:
    """Names docker compose interpolates (`$$` is a literal dollar for the container)."""
    names = set()
    for text in strings(doc):
        for braced, bare in _INTERPOLATION.findall(text):
            names.add(braced or bare)
    return names


def documented_variables() -> set[str]:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


# The tests ------------------------------------------------------------------------------------


def test_the_compose_file_parses_and_follows_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(compose)] == []
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healthcheck"]["intervall"] = "30s"
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown key"


def test_it_runs_every_part_of_the_platform(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "proxy", "chirpstack-gateway-bridge", "chirpstack", "chirpstack-postgres",
        "chirpstack-redis", "mosquitto", "timescaledb", "redis", "migrate", "receiver",
        "worker", "jobs", "beat", "api", "superset-init", "superset", "chirpstack-init",
    }
    commands = {name: " ".join(s.get("command") or []) for name, s in
                compose["services"].items()}
    assert commands["receiver"] == "hypervision receive"
    assert commands["worker"] == "hypervision worker --queues ingest"
    assert commands["beat"] == "hypervision beat"
    assert commands["api"] == "hypervision api"
    assert commands["jobs"].startswith("hypervision worker --queues jobs")


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert unpinned_images(compose, version) == []
    for bad in ("redis:latest", "redis", "redis:7", "redis:7.2-alpine", "nginx:stable",
                "chirpstack/chirpstack:4", "hypervision:latest"):
        assert image_pin_problems(bad, version), bad
    assert image_pin_problems("postgres:15.19-alpine", version) == []


def test_timescaledb_is_the_apache_2_edition(compose: dict[str, Any]) -> None:
    build = compose["services"]["timescaledb"]["build"]["context"]
    dockerfile = (REPO / build / "Dockerfile").read_text(encoding="utf-8")
    assert "-DAPACHE_ONLY=1" in dockerfile


def made_here(base: str, stages: list[str], defaults: dict[str, str]) -> bool:
    """A stage's base is Debian's (`${BASE}`), an earlier stage, `scratch` (files only), or
    an argument whose default is an earlier stage or the host's wheelhouse (images.sh:
    files only)."""
    if base in ("${BASE}", "scratch") or base in stages:
        return True
    arg = re.fullmatch(r"\$\{(\w+)\}", base)
    default = defaults.get(arg.group(1), "") if arg else ""
    return default in stages or default.startswith("hypervision-wheels:")


def test_every_image_but_chirpstacks_is_built_here_from_debian(compose: dict[str, Any]) -> None:
    """No image comes from a registry except ChirpStack's, which stay behind a profile."""
    built = {s["image"] for s in compose["services"].values() if "build" in s}
    for name, service in compose["services"].items():
        if service["image"].startswith("chirpstack/"):
            assert service.get("profiles") == ["chirpstack"], name
        else:
            assert service["image"] in built, name
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text(encoding="utf-8")
        assert re.search(r"^ARG BASE=hypervision-debian:12$", text, re.MULTILINE), dockerfile
        stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
        named = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE)
        defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
        assert stages and all(made_here(b, named, defaults) for b in stages), (dockerfile, stages)
    images_sh = (REPO / "infra" / "docker" / "images.sh").read_text(encoding="utf-8")
    assert "debootstrap --variant=minbase bookworm" in images_sh


def test_every_service_comes_back_by_itself(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        expected = "no" if one_shot(compose, name) else "unless-stopped"
        assert service.get("restart") == expected, name


def test_every_network_is_in_the_benchmarking_range(compose: dict[str, Any]) -> None:
    for name, network in compose["networks"].items():
        for pool in (network or {}).get("ipam", {}).get("config", []):
            default = re.search(r":-([0-9./]+)\}", pool["subnet"])
            assert default and default.group(1).startswith(("198.18.", "198.19.")), name
    engine = (REPO / "infra" / "docker" / "engine.sh").read_text(encoding="utf-8")
    assert '"bip": "198.18.0.1/24"' in engine and '"base": "198.19.0.0/16"' in engine


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    assert missing_health_checks(compose) == []
    # The exemptions are jobs that run once, which other services wait for.
    exempt = [name for name in compose["services"] if one_shot(compose, name)]
    assert exempt == ["chirpstack-init", "migrate", "superset-init"]
    broken = copy.deepcopy(compose)
    del broken["services"]["worker"]["healthcheck"]
    broken["services"]["api"]["healthcheck"] = {"test": ["NONE"]}
    assert missing_health_checks(broken) == ["worker", "api"]


def test_only_the_proxy_and_the_gateway_bridge_publish_ports(compose: dict[str, Any]) -> None:
    assert published_ports(compose) == PUBLISHING
    broken = copy.deepcopy(compose)
    broken["services"]["timescaledb"]["ports"] = ["127.0.0.1:5432:5432"]
    broken["services"]["redis"]["network_mode"] = "host"
    assert set(published_ports(broken)) == {*PUBLISHING, "timescaledb", "redis"}


def test_only_edge_services_leave_the_internal_network(compose: dict[str, Any]) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    outside = {name: sorted(set(s.get("networks", [])) - {"backend"})
               for name, s in compose["services"].items()}
    assert {name: nets for name, nets in outside.items() if nets} == {
        "proxy": ["edge"], "chirpstack-gateway-bridge": ["edge"], "jobs": ["relay"]}


def test_every_stateful_service_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["volumes"])
    for name, path in STATEFUL.items():
        mounts = [str(v).split(":") for v in compose["services"][name].get("volumes", [])]
        named = [m for m in mounts if m[0] in declared and m[1] == path]
        assert named, f"{name}: no named volume at {path}"


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    assert secret_literals(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["command"] = ["redis-server", "--requirepass", "hunter2"]
    broken["services"]["api"]["environment"]["HV_SECRET_KEY"] = "0123456789abcdef" * 4
    broken["services"]["jobs"]["environment"]["HV_ADMIN_DATABASE_URL"] = (
        "postgresql://hv_admin:hunter2@timescaledb/hypervision")
    found = "\n".join(secret_literals(broken))
    assert "--requirepass hunter2" in found
    assert "api: HV_SECRET_KEY is a literal" in found
    assert "jobs: HV_ADMIN_DATABASE_URL: password written in" in found


def test_every_required_secret_stops_compose_when_missing(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name in ("HV_SECRET_KEY", "TIMESCALEDB_ADMIN_PASSWORD", "HV_MQTT_PASSWORD",
                 "CHIRPSTACK_API_SECRET", "CHIRPSTACK_POSTGRES_PASSWORD",
                 "CHIRPSTACK_REDIS_PASSWORD", "GATEWAY_BRIDGE_MQTT_PASSWORD",
                 "CHIRPSTACK_MQTT_PASSWORD", "CHIRPSTACK_POSTGRES_ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + name + r"(:?[-?])?", text)
        assert uses and all(u == ":?" for u in uses), f"{name}: {uses}"


def test_every_variable_it_uses_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = variables_used(compose)
    assert "HV_SECRET_KEY" in used and "TLS_CERT_DIR" in used
    assert sorted(used - documented_variables()) == []


def test_every_file_it_mounts_exists_in_the_repository(compose: dict[str, Any]) -> None:
    missing = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./") and not (REPO / source).exists():
                missing.append(f"{name}: {source}")
    assert missing == []


def test_chirpstack_gets_every_variable_its_configuration_names(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["chirpstack"]
    files = [REPO / str(v).split(":")[0] for v in service["volumes"]
             if str(v).split(":")[1].startswith("/etc/chirpstack/")]
    assert {f.name for f in files} >= {"chirpstack.toml", "region_eu868.toml",
                                       "integration-mqtt.toml"}
    # ChirpStack reads the folder's files as one document: no table may appear twice.
    whole = "\n".join(f.read_text(encoding="utf-8") for f in files)
    config = tomllib.loads(whole)
    assert config["network"]["enabled_regions"] == [r["id"] for r in config["regions"]]
    provided = set(environment(service))
    uncommented = re.sub(r"(?m)^\s*#.*$", "", whole)
    names = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", uncommented))
    assert names and names <= provided, sorted(names - provided)
    for line in uncommented.splitlines():
        if re.match(r"\s*(password|secret)\s*=", line):
            assert "$" in line, line.strip()


def test_every_mqtt_account_has_rules_and_a_password_from_the_environment(
    compose: dict[str, Any],
) -> None:
    folder = REPO / "infra" / "mosquitto"
    acl_users = set(re.findall(r"^user (\S+)", (folder / "acl").read_text(), re.MULTILINE))
    entrypoint = (REPO / "infra" / "docker" / "mosquitto" / "entrypoint.sh").read_text()
    started = re.search(r"make-passwd\.sh /mosquitto/config/passwd (.+)$", entrypoint,
                        re.MULTILINE)
    assert started is not None
    assert set(started.group(1).split()) == acl_users == {
        "hypervision", "chirpstack", "gateway-bridge"}
    provided = environment(compose["services"]["mosquitto"])
    for user in acl_users:
        variable = f"MQTT_{user.upper().replace('-', '_')}_PASSWORD"
        assert _INTERPOLATION.search(provided.get(variable, "")), variable
    conf = (folder / "mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.MULTILINE)
    assert re.search(r"^password_file /mosquitto/config/passwd$", conf, re.MULTILINE)
    # ChirpStack's integration account and the receiver's are the ones the ACL names.
    integration = tomllib.loads((REPO / "infra" / "chirpstack" / "integration-mqtt.toml")
                                .read_text())["integration"]["mqtt"]
    assert integration["username"] in acl_users and integration["qos"] == 1
    platform = environment(compose["services"]["receiver"])
    assert platform["HV_MQTT_USERNAME"] in acl_users


def test_every_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), *map(str, DOCKERFILES)], capture_output=True,
                            text=True, check=False)
    assert len(DOCKERFILES) == 5
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_build_never_sees_local_secrets_or_state() -> None:
    ignored = (REPO / "infra" / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for entry in (".env", ".git/", ".venv/", "var/", "certs/", "backups/"):
        assert entry in ignored, entry


def test_the_platforms_containers_run_unprivileged(compose: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users[-1] == "10001:10001"
    for name, service in compose["services"].items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if service["image"].split(":")[0] in {"hypervision", "hypervision-superset"}:
            assert service.get("cap_drop") == ["ALL"], name
            assert "privileged" not in service, name


def test_services_of_one_image_build_it_alike(compose: dict[str, Any]) -> None:
    """Two services naming one image with different builds would build whichever comes
    first: `superset` once got the platform's image, without Superset in it."""
    builds: dict[str, list[Any]] = {}
    for service in compose["services"].values():
        builds.setdefault(service["image"], []).append(service.get("build"))
    for image, found in builds.items():
        made = [b for b in found if b is not None]
        assert all(b == made[0] for b in made), (image, made)
