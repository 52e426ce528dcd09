"""API routes for downlinks: send a command to a device, read what became of it.

    POST /devices/{dev_eui}/downlinks          enqueue a command (202, the queued downlink)
    GET  /devices/{dev_eui}/downlinks          the device's latest downlinks and their state
    GET  /devices/{dev_eui}/downlink-commands  what the device's model can be sent

Who calls comes from `get_actor`, a placeholder the API application overrides with its
authentication (`app.dependency_overrides[get_actor] = ...`), returning an `Actor`: the
actor string for the audit trail, the member the caller acts for (None for the
syndicate's operators, who reach every member) and whether they may send commands. A
device of another member is answered 404, exactly like a missing one; a caller without the
right gets 403. `get_connection` (a superuser connection by default; the downlink row is
written as the member's writer role) and `get_chirpstack` can be overridden the same way.
See infra/chirpstack/README.md, "Downlinks".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from hypervision.accounts import Who
from hypervision.chirpstack import downlinks
from hypervision.chirpstack.client import ChirpStack, ChirpStackError, Unavailable
from hypervision.chirpstack.encoders import EncodeError, encoder_for
from hypervision.db import connect_admin
from hypervision.settings import get_settings

router = APIRouter(tags=["downlinks"])


@dataclass(frozen=True)
class Actor:
    """The caller, as the downlink routes need it."""

    actor: str  # for the audit trail: user:<email>, token:<id>...
    member: str | None  # the member acted for; None = an operator of the syndicate
    may_command: bool = False
    request_id: str | None = None
    remote_addr: str | None = None


def get_actor() -> Actor:
    """Placeholder: the API application overrides it with its authentication."""
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication is not configured")


def get_connection() -> Iterator[psycopg.Connection]:
    with connect_admin(get_settings()) as conn:
        yield conn


@lru_cache(maxsize=1)
def _client() -> ChirpStack:
    # One channel per process: gRPC channels are thread-safe and reconnect by themselves.
    return ChirpStack.from_settings(get_settings())


def _client_or_503() -> ChirpStack:
    try:
        return _client()
    except ChirpStackError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


def get_chirpstack() -> Callable[[], ChirpStack]:
    """The ChirpStack client, obtained lazily: a caller is checked (401/403/404) before
    the network server's configuration or availability can answer 503."""
    return _client_or_503


CurrentActor = Annotated[Actor, Depends(get_actor)]
Connection = Annotated[psycopg.Connection, Depends(get_connection)]
Client = Annotated[Callable[[], ChirpStack], Depends(get_chirpstack)]
DevEui = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{16}$", description="16 hex digits")]


class DownlinkRequest(BaseModel):
    command: str = Field(description="a command of the device's model, e.g. `switch`")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="e.g. {\"circuits\": [1, 2], \"state\": \"on\"}")
    confirmed: bool = Field(default=True, description="ask the device to acknowledge it")


class DownlinkOut(BaseModel):
    queue_item_id: str
    dev_eui: str
    command: str
    params: dict[str, Any]
    f_port: int
    data_hex: str
    confirmed: bool
    status: str
    requested_by: str
    requested_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None

    @classmethod
    def of(cls, d: downlinks.Downlink) -> DownlinkOut:
        return cls(queue_item_id=d.queue_item_id, dev_eui=d.dev_eui, command=d.command,
                   params=d.params, f_port=d.f_port, data_hex=bytes(d.data).hex(),
                   confirmed=d.confirmed, status=d.status, requested_by=d.requested_by,
                   requested_at=d.requested_at, sent_at=d.sent_at, acked_at=d.acked_at)


class CommandOut(BaseModel):
    name: str
    description: str
    params: dict[str, Any]


def _target(conn: psycopg.Connection, dev_eui: str, actor: Actor) -> downlinks.Target:
    try:
        return downlinks.resolve(conn, dev_eui, actor.member)
    except downlinks.DeviceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {dev_eui} not found") from None


@router.post("/devices/{dev_eui}/downlinks", status_code=status.HTTP_202_ACCEPTED,
             response_model=DownlinkOut)
def send_downlink(dev_eui: DevEui, body: DownlinkRequest, actor: CurrentActor,
                  conn: Connection, client: Client) -> DownlinkOut:
    """Encode the command for the device's model and queue it in ChirpStack."""
    _target(conn, dev_eui, actor)
    if not actor.may_command:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this caller may not send commands")
    who = Who(actor=actor.actor, source="api", request_id=actor.request_id,
              remote_addr=actor.remote_addr)
    try:
        sent = downlinks.enqueue(conn, client(), dev_eui.lower(), body.command, body.params,
                                 who=who, member=actor.member, confirmed=body.confirmed)
    except EncodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except downlinks.NotRecorded as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from None
    except downlinks.DownlinkError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except Unavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except ChirpStackError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    return DownlinkOut.of(sent)


@router.get("/devices/{dev_eui}/downlinks", response_model=list[DownlinkOut])
def device_downlinks(dev_eui: DevEui, actor: CurrentActor, conn: Connection,
                     limit: int = 50) -> list[DownlinkOut]:
    """The device's latest downlinks, newest first, with their state."""
    target = _target(conn, dev_eui, actor)
    rows = downlinks.list_downlinks(conn, target.schema, target.dev_eui, min(max(limit, 1), 500))
    return [DownlinkOut.of(d) for d in rows]


@router.get("/devices/{dev_eui}/downlink-commands", response_model=list[CommandOut])
def device_commands(dev_eui: DevEui, actor: CurrentActor, conn: Connection) -> list[CommandOut]:
    """The commands the device's model accepts, with their parameters' JSON schema."""
    target = _target(conn, dev_eui, actor)
    try:
        encoder = encoder_for(target.model_id)
    except EncodeError:
        return []
    return [CommandOut(name=c.name, description=c.description,
                       params=c.params.model_json_schema())
            for c in encoder.commands.values()]
