"""The open data files, served to anyone without a token: `/opendata/catalog.jsonld`
(DCAT-AP), `/opendata/<member>/<kind>.csv` and `.schema.json` (Table Schema). Only files
`publish()` writes can be named: the member is a slug, the file one of four names."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from hypervision.sharing.opendata_catalogue import FILE, folder
from hypervision.tenancy.spec import SLUG

router = APIRouter(tags=["open data"])
MEDIA = {"csv": "text/csv; charset=utf-8", "schema.json": "application/json"}


@router.get("/opendata/catalog.jsonld")
def catalogue(request: Request) -> FileResponse:
    path = folder(request.app.state.hv.settings) / "catalog.jsonld"
    if not path.exists():
        raise HTTPException(404, "no open data published yet")
    return FileResponse(path, media_type="application/ld+json",
                        headers={"Access-Control-Allow-Origin": "*"})


@router.get("/opendata/{member}/{name}")
def dataset_file(request: Request, member: str, name: str) -> FileResponse:
    match = FILE.match(name)
    if not re.match(SLUG, member) or match is None:
        raise HTTPException(404, "not found")
    path = folder(request.app.state.hv.settings) / member / name
    if not path.exists():
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=MEDIA[match[2]],
                        headers={"Access-Control-Allow-Origin": "*"})
