"""The gRPC client against the in-process ChirpStack: the token, retries, clear errors."""

from __future__ import annotations

import threading

import grpc
import pytest
from chirpstack_api import api

from hypervision.chirpstack.client import (
    ChirpStack,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from tests.chirpstack.conftest import DEAD_PORT, TOKEN
from tests.chirpstack.fake_chirpstack import FakeChirpStack


def test_it_sends_the_token_as_bearer_metadata(client: ChirpStack,
                                               chirpstack: FakeChirpStack) -> None:
    created = client.call("TenantService", "Create",
                          api.CreateTenantRequest(tenant=api.Tenant(name="T")))
    found = client.call("TenantService", "Get", api.GetTenantRequest(id=created.id))
    assert found.tenant.name == "T"
    assert chirpstack.store.calls["TenantService.Get"] == 1


def test_a_wrong_token_is_refused_with_a_clear_error_that_does_not_show_it(
    chirpstack: FakeChirpStack,
) -> None:
    wrong = "not-the-right-token-0123456789"
    with ChirpStack(chirpstack.target, wrong, attempts=3, backoff=0.01) as client, \
            pytest.raises(Unauthenticated) as caught:
        client.call("TenantService", "List", api.ListTenantsRequest(limit=10))
    message = str(caught.value)
    assert "refused the API token" in message and "HV_CHIRPSTACK_API_TOKEN" in message
    assert wrong not in message and TOKEN not in message
    # A refused token is not retried: it will not become right.
    assert chirpstack.store.calls["TenantService.List"] == 1


def test_no_token_is_refused_before_any_call() -> None:
    with pytest.raises(Unauthenticated, match="HV_CHIRPSTACK_API_TOKEN"):
        ChirpStack("127.0.0.1:1", "")


def test_an_unreachable_chirpstack_is_retried_then_reported_clearly() -> None:
    with ChirpStack(f"127.0.0.1:{DEAD_PORT}", TOKEN, timeout=2, attempts=3,
                    backoff=0.05) as client, pytest.raises(Unavailable) as caught:
        client.call("TenantService", "List", api.ListTenantsRequest(limit=10))
    message = str(caught.value)
    assert f"127.0.0.1:{DEAD_PORT}" in message
    assert "UNAVAILABLE after 3 attempt(s)" in message
    assert "HV_CHIRPSTACK_API_URL" in message


def test_a_chirpstack_that_comes_back_is_reached_by_the_retries() -> None:
    late = FakeChirpStack(DEAD_PORT, TOKEN)
    starter = threading.Timer(0.5, late.start)
    with ChirpStack(late.target, TOKEN, timeout=2, attempts=10, backoff=0.2) as client:
        starter.start()
        try:
            response = client.call("TenantService", "List", api.ListTenantsRequest(limit=1))
        finally:
            starter.join()
            late.stop()
    assert response.total_count == 0
    assert late.store.calls["TenantService.List"] == 1


def test_a_transient_unavailability_is_retried_until_the_call_succeeds(
    client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    chirpstack.store.fail_next("TenantService.List", grpc.StatusCode.UNAVAILABLE,
                               grpc.StatusCode.UNAVAILABLE)
    response = client.call("TenantService", "List", api.ListTenantsRequest(limit=10))
    assert response.total_count == 0
    assert chirpstack.store.calls["TenantService.List"] == 3


def test_a_create_that_timed_out_is_not_repeated_but_a_read_is(
    client: ChirpStack, chirpstack: FakeChirpStack,
) -> None:
    chirpstack.store.fail_next("TenantService.Create", grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED after 1 attempt"):
        client.call("TenantService", "Create", api.CreateTenantRequest(
            tenant=api.Tenant(name="once")))
    assert chirpstack.store.calls["TenantService.Create"] == 1

    chirpstack.store.fail_next("TenantService.List", grpc.StatusCode.DEADLINE_EXCEEDED)
    client.call("TenantService", "List", api.ListTenantsRequest(limit=10))
    assert chirpstack.store.calls["TenantService.List"] == 2


def test_a_missing_object_is_not_found_and_get_or_none_says_none(client: ChirpStack) -> None:
    request = api.GetDeviceRequest(dev_eui="0102030405060708")
    with pytest.raises(NotFound, match=r"DeviceService\.Get failed: NOT_FOUND"):
        client.call("DeviceService", "Get", request)
    assert client.get_or_none("DeviceService", "Get", request) is None


def test_list_all_reads_every_page(client: ChirpStack) -> None:
    for i in range(230):
        client.call("TenantService", "Create",
                    api.CreateTenantRequest(tenant=api.Tenant(name=f"t{i:03d}")))
    names = [t.name for t in client.list_all("TenantService", api.ListTenantsRequest())]
    assert names == [f"t{i:03d}" for i in range(230)]
