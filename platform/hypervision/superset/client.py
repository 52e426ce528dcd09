"""A small client for Superset's REST API (/api/v1), as the platform uses it.

How Superset 6.1 wants to be talked to:
- log in with `POST /api/v1/security/login` and `"provider": "db"`: the answer holds a JWT
  (access token) sent as `Authorization: Bearer`;
- every write (POST, PUT, DELETE) also needs a CSRF token, from
  `GET /api/v1/security/csrf_token/`, sent as `X-CSRFToken`, together with the session
  cookie that came with it (httpx keeps it in the client's cookie jar);
- list filters travel as rison in the `q` parameter.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import prison


class SupersetError(RuntimeError):
    """Superset refused a request or could not be reached; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """One logged-in Superset user. Use as a context manager, or call close()."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._csrf: str | None = None
        self.login(password)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # Session ----------------------------------------------------------------------------

    def login(self, password: str) -> None:
        try:
            response = self.http.post("/api/v1/security/login", json={
                "username": self.username, "password": password, "provider": "db",
                "refresh": False,
            })
        except httpx.HTTPError as exc:
            raise SupersetError(f"Superset unreachable at {self.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise SupersetError(f"login of {self.username!r} refused ({response.status_code})",
                                response.status_code)
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self._csrf = None

    def _csrf_token(self) -> str:
        if self._csrf is None:
            self._csrf = self.request("GET", "/api/v1/security/csrf_token/")["result"]
        return self._csrf

    # Requests ---------------------------------------------------------------------------

    def response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw response, whatever its status (tests look at 403s and 404s)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if method != "GET":
            headers["X-CSRFToken"] = self._csrf_token()
            headers["Referer"] = self.base_url
        try:
            return self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise SupersetError(f"{method} {path}: {exc}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; a status of 400 or more raises SupersetError."""
        response = self.response(method, path, **kwargs)
        if response.status_code >= 400:
            raise SupersetError(
                f"{method} {path}: {response.status_code} {_message(response)}",
                response.status_code,
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def find(self, resource: str, columns: list[str] | None = None,
             filters: list[tuple[str, str, Any]] | None = None,
             **equals: Any) -> list[dict[str, Any]]:
        """Every row of a list endpoint (`/api/v1/<resource>/`) whose columns equal the
        given values and that pass `filters` ((column, operator, value): `rel_o_m` for a
        relation's id, say), all pages."""
        conditions = [{"col": k, "opr": "eq", "value": v} for k, v in equals.items()]
        conditions += [{"col": c, "opr": o, "value": v} for c, o, v in filters or []]
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            query: dict[str, Any] = {"filters": conditions, "page": page, "page_size": 100}
            if columns:
                query["columns"] = columns
            answer = self.get(f"/api/v1/{resource}/", q=prison.dumps(query))
            rows.extend(answer["result"])
            if len(answer["result"]) < 100:
                return rows
            page += 1

    def import_bundle(self, resource: str, bundle: bytes, passwords: dict[str, str] | None = None,
                      overwrite: bool = True) -> None:
        """Import an export bundle (a zip) through `/api/v1/<resource>/import/`."""
        form = {"overwrite": "true" if overwrite else "false"}
        if passwords:
            form["passwords"] = json.dumps(passwords)
        self.request("POST", f"/api/v1/{resource}/import/", data=form,
                     files={"formData": ("bundle.zip", bundle, "application/zip")})


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("message", "errors", "msg"):
            if key in body:
                return json.dumps(body[key], ensure_ascii=False)[:600]
    return json.dumps(body, ensure_ascii=False)[:600]
