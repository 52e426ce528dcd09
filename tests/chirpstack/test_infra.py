"""The configuration shipped in infra/chirpstack/ and infra/mosquitto/ says what the
platform relies on."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from hypervision.chirpstack.network import load_network
from hypervision.settings import Settings
from hypervision.tenancy.spec import load_dir

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def test_chirpstack_publishes_json_events_with_qos_1_where_the_receiver_subscribes() -> None:
    conf = tomllib.loads((INFRA / "chirpstack" / "integration-mqtt.toml").read_text())
    mqtt = conf["integration"]["mqtt"]
    assert conf["integration"]["enabled"] == ["mqtt"]
    assert mqtt["qos"] == 1 and mqtt["json"] is True and mqtt["username"] == "chirpstack"
    topic = re.sub(r"\{\{\w+\}\}", "+", mqtt["event_topic"])
    assert topic == Settings.model_fields["mqtt_topic"].default


def test_the_http_integration_snippet_is_a_valid_request_body() -> None:
    from chirpstack_api import api
    from google.protobuf import json_format

    body = json.loads((INFRA / "chirpstack" / "http-integration.json").read_text())
    request = json_format.ParseDict(body, api.CreateHttpIntegrationRequest())
    assert request.integration.encoding == api.Encoding.JSON
    assert request.integration.event_endpoint_url.endswith("/chirpstack")


def test_the_shipped_network_file_is_valid_and_its_owner_is_a_member() -> None:
    network = load_network(INFRA / "chirpstack" / "network.yaml")
    members = {s.name for s in load_dir(REPO / "tenants")}
    assert network.gateways is not None and network.gateways.owner in members
    assert network.profile("milesight-ws558").supports_class_c


def test_the_production_broker_refuses_anonymous_clients_and_applies_the_acl() -> None:
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1]
             for line in (INFRA / "mosquitto" / "mosquitto.conf").read_text().splitlines()
             if line and not line.startswith("#")}
    assert lines["allow_anonymous"] == "false"
    assert lines["per_listener_settings"] == "false"
    assert "password_file" in lines and "acl_file" in lines
    assert lines["persistence"] == "true"
