"""The public pages are part of the platform's web application, with their own strict
content policy, and without any token."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hypervision.api.main import create_app

pytestmark = pytest.mark.services


def test_a_device_page_is_served_by_the_api_application_without_a_token(
    platform_db: Any, admin: psycopg.Connection
) -> None:
    public_id = admin.execute(
        "SELECT public_id FROM hv.devices WHERE dev_eui = 'a1a1a1a1a1a10003'"
    ).fetchone()[0]
    with TestClient(create_app(platform_db)) as client:
        page = client.get(f"/d/{public_id}")
        assert page.status_code == 200, page.text[:300]
        assert "Commune Alpha" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert client.get("/d/0000000000000000").status_code == 404
        # The API keeps its own policy.
        api = client.get("/api/v1/health")
        assert api.headers["content-security-policy"] == (
            "default-src 'self'; frame-ancestors 'none'")
