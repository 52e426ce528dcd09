"""The console's pages, one module per page family; `router` gathers them."""

from __future__ import annotations

from fastapi import APIRouter

from hypervision.console import web
from hypervision.console.pages import (
    account,
    alerts,
    devices,
    exports,
    home,
    journal,
    operator,
    syndicate,
)

router = APIRouter()
router.include_router(web.router)
for module in (home, devices, alerts, exports, journal, operator, syndicate, account):
    router.include_router(module.router)
