"""Reading the console's forms (application/x-www-form-urlencoded, the browser's default)
with the CSRF token checked before anything else is looked at."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status

from hypervision.console.web import check_csrf

MAX_FORM_BYTES = 64 * 1024


class Form(dict[str, str]):
    """A posted form: one value per field (the last one), and `all(name)` for lists."""

    def __init__(self, pairs: dict[str, list[str]]) -> None:
        super().__init__({k: v[-1] for k, v in pairs.items()})
        self._lists = pairs

    def all(self, name: str) -> list[str]:
        return list(self._lists.get(name, []))


async def posted_form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "form too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "a form was expected")
    try:
        form = Form(parse_qs(body.decode("utf-8"), keep_blank_values=True,
                             max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "unreadable form") from None
    check_csrf(request, form.get("csrf"))
    return form


PostedForm = Annotated[Form, Depends(posted_form)]
