"""API routes for downlinks: send a command to a device, read what became of it.

    POST /devices/{dev_eui}/downlinks          enqueue a command (202, the queued downlink)
    GET  /devices/{dev_eui}/downlinks          the device's latest downlinks and their state
    GET  /devices/{dev_eui}/downlink-commands  what the device's model can be sent

Who calls comes from `get_actor`, a placeholder the API application overrides with its
authentication (`app.dependency_overrides[get_actor] = ...`), returning an `Actor`: the
actor string for the audit trail, the member the caller acts for (None for the
syndicate's operators, who reach every member) and whether they may send commands. A
device of another member is answered 404, exactly like a missing one; a caller without the
right gets 403.

The database comes from `get_databases`, another placeholder the API overrides with its
own connection pools (hypervision.api.db.Databases); these routes never connect as the
superuser nor as a member's writer or owner role:
- the device is resolved in the catalogue (hv.devices, hv.members) on the API role's
  connection;
- a device's downlinks are read on the member's reader connection, like every read;
- a downlink request and its audit entry are written in one transaction on the API role's
  connection, which holds INSERT of the request's columns on each member's `downlinks`
  and nothing else of the schema (`api.db.grant_downlink_requests`, run by `tenants
  apply`); without that grant the request is refused (503) before anything is sent.
`get_chirpstack` can be overridden the same way. See infra/chirpstack/README.md,
"Downlinks".
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Protocol

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from hypervision import audit
from hypervision.accounts import Who
from hypervision.chirpstack import downlinks
from hypervision.chirpstack.client import ChirpStack, ChirpStackError, Unavailable
from hypervision.chirpstack.encoders import EncodeError, encoder_for
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


class Databases(Protocol):
    """The API's connections, as hypervision.api.db.Databases provides them."""

    def control(self) -> AbstractContextManager[psycopg.Connection]:
        """A connection as the API's own role."""
        ...

    def reader(self, slug: str) -> AbstractContextManager[psycopg.Connection]:
        """A connection as the member's reader role."""
        ...

    def changes(self, slug: str) -> AbstractContextManager[
            tuple[psycopg.Connection, psycopg.Connection]]:
        """The API's own role on the primary and on the member's database server."""
        ...


def get_databases() -> Databases:
    """Placeholder: the API application overrides it with its connection pools."""
    raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not configured")


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
Dbs = Annotated[Databases, Depends(get_databases)]
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


def _target(dbs: Databases, dev_eui: str, actor: Actor) -> downlinks.Target:
    with dbs.control() as conn:
        try:
            return downlinks.resolve(conn, dev_eui, actor.member)
        except downlinks.DeviceNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"device {dev_eui} not found") from None


@router.post("/devices/{dev_eui}/downlinks", status_code=status.HTTP_202_ACCEPTED,
             response_model=DownlinkOut)
def send_downlink(dev_eui: DevEui, body: DownlinkRequest, actor: CurrentActor,
                  dbs: Dbs, client: Client) -> DownlinkOut:
    """Encode the command for the device's model and queue it in ChirpStack."""
    target = _target(dbs, dev_eui, actor)
    if not actor.may_command:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this caller may not send commands")
    who = Who(actor=actor.actor, source="api", request_id=actor.request_id,
              remote_addr=actor.remote_addr)
    chirpstack = client()
    try:
        # The row goes to the member's database server (hypervision.placement).
        with dbs.changes(target.member_slug) as (conn, member_conn):
            sent = downlinks.enqueue(conn, chirpstack, dev_eui.lower(), body.command,
                                     body.params, who=who, member=actor.member,
                                     confirmed=body.confirmed, member_conn=member_conn)
    except EncodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except downlinks.NotPermitted as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
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
def device_downlinks(dev_eui: DevEui, actor: CurrentActor, dbs: Dbs,
                     limit: int = 50) -> list[DownlinkOut]:
    """The device's latest downlinks, newest first, with their state."""
    target = _target(dbs, dev_eui, actor)
    with dbs.reader(target.member_slug) as conn:
        rows = downlinks.list_downlinks(conn, target.schema, target.dev_eui,
                                        min(max(limit, 1), 500))
    # A device's command history is read like its data: with an audit entry.
    with dbs.control() as conn:
        audit.record(conn, actor=actor.actor, member=target.member_slug,
                     action="downlinks.read", target=target.dev_eui, rows=len(rows),
                     source="api", request_id=actor.request_id, remote_addr=actor.remote_addr)
    return [DownlinkOut.of(d) for d in rows]


@router.get("/devices/{dev_eui}/downlink-commands", response_model=list[CommandOut])
def device_commands(dev_eui: DevEui, actor: CurrentActor, dbs: Dbs) -> list[CommandOut]:
    """The commands the device's model accepts, with their parameters' JSON schema."""
    target = _target(dbs, dev_eui, actor)
    try:
        encoder = encoder_for(target.model_id)
    except EncodeError:
        return []
    return [CommandOut(name=c.name, description=c.description,
                       params=c.params.model_json_schema())
            for c in encoder.commands.values()]
