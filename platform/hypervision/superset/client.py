"""A small client for Superset's REST API (/api/v1), as the platform uses it.

How Superset 6.1 wants to be talked to:
- log in with `POST /api/v1/security/login` and `"provider": "db"`: the answer holds a JWT
  (access token) sent as `Authorization: Bearer`;
- every write (POST, PUT, DELETE) also needs a CSRF token, from
  `GET /api/v1/security/csrf_token/`, sent as `X-CSRFToken`, together with the session
  cookie that came with it (httpx keeps it in the client's cookie jar);
- list filters travel as rison in the `q` parameter.

Only Superset's `admin` (the provisioning account) logs in with a password. A member's
user signs in through the platform, as in a browser (`Client.through_platform`): the
console's sign-in, then Superset's login, which the platform answers; the session cookie
then authenticates the REST calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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

    def __init__(self, base_url: str, username: str, password: str | None,
                 timeout: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._csrf: str | None = None
        if password is not None:
            self.login(password)

    @classmethod
    def through_platform(cls, base_url: str, platform_url: str, email: str, password: str,
                         code: Callable[[], str] | None = None,
                         timeout: float = 120) -> Client:
        """A member's user signed in as in a browser: the console's sign-in form (and
        its second factor, `code()`, when the account has one), then Superset's login,
        which goes to the platform and back with a code."""
        client = cls(base_url, email, None, timeout)
        try:
            client._platform_sign_in(platform_url.rstrip("/"), email, password, code)
        except BaseException:
            client.close()
            raise
        return client

    def _platform_sign_in(self, platform: str, email: str, password: str,
                          code: Callable[[], str] | None) -> None:
        try:
            page = self.http.get(f"{platform}/console/login")
            answer = self.http.post(f"{platform}/console/login", data={
                "csrf": _csrf_field(page.text), "email": email, "password": password,
                "next": "/console/"})
            if answer.status_code == 303 and "/console/login/code" in answer.headers[
                    "location"] and code is not None:
                step = self.http.get(f"{platform}{answer.headers['location']}")
                answer = self.http.post(f"{platform}/console/login/code", data={
                    "csrf": _csrf_field(step.text), "code": code(), "next": "/console/"})
            if answer.status_code != 303 or answer.headers["location"] != "/console/":
                raise SupersetError(f"the platform refused the sign-in of {email!r}"
                                    f" ({answer.status_code})", answer.status_code)
            landed = self.http.get("/login/", follow_redirects=True)
        except httpx.HTTPError as exc:
            raise SupersetError(f"sign-in through the platform failed: {exc}") from exc
        me = self.http.get("/api/v1/me/")
        if me.status_code != 200:
            raise SupersetError(f"Superset did not sign {email!r} in (ended at {landed.url},"
                                f" {landed.status_code})", me.status_code)

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
            response = self.response("GET", "/api/v1/security/csrf_token/")
            if response.status_code >= 400:
                raise SupersetError(f"GET csrf_token: {response.status_code} "
                                    f"{_message(response)}", response.status_code)
            self._csrf = response.json()["result"]
            # Behind the TLS proxy Superset marks its session cookie `Secure`
            # (HV_SUPERSET_BEHIND_TLS), but the platform reaches it in plain HTTP on the
            # internal network: kept as a plain cookie, the session that holds the CSRF
            # token goes back with the writes (otherwise "CSRF session token is missing").
            for name, value in response.cookies.items():
                self.http.cookies.set(name, value)
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


def _csrf_field(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    if found is None:
        raise SupersetError("the platform's sign-in page has no form")
    return found.group(1)


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
