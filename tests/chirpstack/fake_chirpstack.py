"""An in-process ChirpStack API for tests, built from the real `chirpstack_api` service
stubs and messages: Tenant, Application, DeviceProfile, Device (with keys and queue) and
Gateway services over an in-memory store, on a loopback port, and the users' login
(InternalService.Login, UserService.List/UpdatePassword; `admin`/`admin` at first).

It keeps the ChirpStack behaviours the platform relies on: `authorization: Bearer <token>`
checked on every call (UNAUTHENTICATED otherwise), NOT_FOUND and ALREADY_EXISTS, hex
validation of EUIs and keys, a device's profile and application in the same tenant,
gateways only in tenants that may have them, deletes that cascade, List with
limit/offset/search, and a gateway's state computed from its last-seen time and stats
interval. `fail_next` makes chosen calls fail with a status first (UNAVAILABLE...), and
`calls` counts every call, so tests can tell reads from writes.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from chirpstack_api import api
from google.protobuf.timestamp_pb2 import Timestamp

EUI = re.compile(r"^[0-9a-fA-F]{16}$")
KEY = re.compile(r"^([0-9a-fA-F]{32})?$")
WRITES = ("Create", "Update", "Delete", "Enqueue")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> Any:
    context.abort(code, message)


def _copy(message: Any) -> Any:
    result = type(message)()
    result.CopyFrom(message)
    return result


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Store:
    """What the fake ChirpStack holds. Tests read and change it directly."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, api.Tenant] = {}
        self.applications: dict[str, api.Application] = {}
        self.profiles: dict[str, api.DeviceProfile] = {}
        self.devices: dict[str, api.Device] = {}
        self.keys: dict[str, api.DeviceKeys] = {}
        self.queue: dict[str, list[api.DeviceQueueItem]] = {}
        self.gateways: dict[str, api.Gateway] = {}
        self.gateway_seen: dict[str, datetime] = {}
        # ChirpStack's users (email -> [id, password]; `admin`/`admin` as at install) and
        # the session tokens InternalService.Login issued.
        self.users: dict[str, list[str]] = {"admin": [str(uuid.uuid4()), "admin"]}
        self.sessions: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[grpc.StatusCode]] = {}

    def fail_next(self, call: str, *codes: grpc.StatusCode) -> None:
        """Make the next calls of `Service.Method` fail with these codes, in order."""
        with self.lock:
            self.failures.setdefault(call, []).extend(codes)

    def writes(self) -> Counter[str]:
        return Counter({k: v for k, v in self.calls.items()
                        if k.split(".")[1].startswith(WRITES)})

    def see_gateway(self, gateway_id: str, at: datetime) -> None:
        with self.lock:
            self.gateway_seen[gateway_id] = at

    def gateway_state(self, gateway_id: str, now: datetime) -> int:
        seen = self.gateway_seen.get(gateway_id)
        if seen is None:
            return api.GatewayState.NEVER_SEEN
        interval = timedelta(seconds=2 * self.gateways[gateway_id].stats_interval)
        return api.GatewayState.ONLINE if seen > now - interval else api.GatewayState.OFFLINE

    # cascades, as ChirpStack's foreign keys do
    def delete_application(self, app_id: str) -> None:
        self.applications.pop(app_id, None)
        for eui in [e for e, d in self.devices.items() if d.application_id == app_id]:
            self.delete_device(eui)

    def delete_profile(self, profile_id: str) -> None:
        self.profiles.pop(profile_id, None)
        for eui in [e for e, d in self.devices.items() if d.device_profile_id == profile_id]:
            self.delete_device(eui)

    def delete_device(self, dev_eui: str) -> None:
        self.devices.pop(dev_eui, None)
        self.keys.pop(dev_eui, None)
        self.queue.pop(dev_eui, None)


def _page(items: list[Any], limit: int, offset: int) -> list[Any]:
    return items[offset: offset + limit] if limit else []


def _need_uuid(context: grpc.ServicerContext, value: str, what: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"invalid {what}: {value!r}")


def _need_eui(context: grpc.ServicerContext, value: str) -> str:
    if not EUI.match(value):
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"invalid EUI64: {value!r}")
    return value.lower()


def _get(context: grpc.ServicerContext, table: dict[str, Any], key: str) -> Any:
    found = table.get(key)
    if found is None:
        _abort(context, grpc.StatusCode.NOT_FOUND, f"Object does not exist (id: {key})")
    return found


class Tenants(api.TenantServiceServicer):
    def __init__(self, store: Store) -> None:
        self.s = store

    def Create(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            if not request.tenant.name:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "name is required")
            tenant = _copy(request.tenant)
            tenant.id = str(uuid.uuid4())
            self.s.tenants[tenant.id] = tenant
            return api.CreateTenantResponse(id=tenant.id)

    def Get(self, request: Any, context: Any) -> Any:
        _need_uuid(context, request.id, "tenant id")
        with self.s.lock:
            return api.GetTenantResponse(tenant=_copy(_get(context, self.s.tenants, request.id)))

    def Update(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _get(context, self.s.tenants, request.tenant.id)
            self.s.tenants[request.tenant.id] = _copy(request.tenant)
            return _empty()

    def Delete(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _get(context, self.s.tenants, request.id)
            del self.s.tenants[request.id]
            for app_id in [a for a, v in self.s.applications.items() if v.tenant_id == request.id]:
                self.s.delete_application(app_id)
            for pid in [p for p, v in self.s.profiles.items() if v.tenant_id == request.id]:
                self.s.delete_profile(pid)
            for gid in [g for g, v in self.s.gateways.items() if v.tenant_id == request.id]:
                del self.s.gateways[gid]
            return _empty()

    def List(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            items = sorted((t for t in self.s.tenants.values()
                            if request.search.lower() in t.name.lower()), key=lambda t: t.name)
            return api.ListTenantsResponse(total_count=len(items), result=[
                api.TenantListItem(id=t.id, name=t.name, can_have_gateways=t.can_have_gateways)
                for t in _page(items, request.limit, request.offset)])


class Applications(api.ApplicationServiceServicer):
    def __init__(self, store: Store) -> None:
        self.s = store

    def Create(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _need_uuid(context, request.application.tenant_id, "tenant id")
            _get(context, self.s.tenants, request.application.tenant_id)
            app = _copy(request.application)
            app.id = str(uuid.uuid4())
            self.s.applications[app.id] = app
            return api.CreateApplicationResponse(id=app.id)

    def Get(self, request: Any, context: Any) -> Any:
        _need_uuid(context, request.id, "application id")
        with self.s.lock:
            app = _get(context, self.s.applications, request.id)
            return api.GetApplicationResponse(application=_copy(app))

    def Update(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            current = _get(context, self.s.applications, request.application.id)
            app = _copy(request.application)
            app.tenant_id = current.tenant_id  # ChirpStack does not move applications
            self.s.applications[app.id] = app
            return _empty()

    def Delete(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _get(context, self.s.applications, request.id)
            self.s.delete_application(request.id)
            return _empty()

    def List(self, request: Any, context: Any) -> Any:
        _need_uuid(context, request.tenant_id, "tenant id")
        with self.s.lock:
            items = sorted((a for a in self.s.applications.values()
                            if a.tenant_id == request.tenant_id
                            and request.search.lower() in a.name.lower()), key=lambda a: a.name)
            return api.ListApplicationsResponse(total_count=len(items), result=[
                api.ApplicationListItem(id=a.id, name=a.name, description=a.description)
                for a in _page(items, request.limit, request.offset)])


class Profiles(api.DeviceProfileServiceServicer):
    def __init__(self, store: Store) -> None:
        self.s = store

    def Create(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _need_uuid(context, request.device_profile.tenant_id, "tenant id")
            _get(context, self.s.tenants, request.device_profile.tenant_id)
            profile = _copy(request.device_profile)
            profile.id = str(uuid.uuid4())
            self.s.profiles[profile.id] = profile
            return api.CreateDeviceProfileResponse(id=profile.id)

    def Get(self, request: Any, context: Any) -> Any:
        _need_uuid(context, request.id, "device profile id")
        with self.s.lock:
            profile = _get(context, self.s.profiles, request.id)
            return api.GetDeviceProfileResponse(device_profile=_copy(profile))

    def Update(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            current = _get(context, self.s.profiles, request.device_profile.id)
            profile = _copy(request.device_profile)
            profile.tenant_id = current.tenant_id
            self.s.profiles[profile.id] = profile
            return _empty()

    def Delete(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            _get(context, self.s.profiles, request.id)
            self.s.delete_profile(request.id)
            return _empty()

    def List(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            items = sorted((p for p in self.s.profiles.values()
                            if p.tenant_id == request.tenant_id
                            and request.search.lower() in p.name.lower()), key=lambda p: p.name)
            return api.ListDeviceProfilesResponse(total_count=len(items), result=[
                api.DeviceProfileListItem(id=p.id, name=p.name, region=p.region,
                                          mac_version=p.mac_version,
                                          supports_otaa=p.supports_otaa,
                                          supports_class_c=p.supports_class_c)
                for p in _page(items, request.limit, request.offset)])


class Devices(api.DeviceServiceServicer):
    def __init__(self, store: Store) -> None:
        self.s = store

    def _check_links(self, context: Any, device: Any) -> None:
        _need_uuid(context, device.application_id, "application id")
        _need_uuid(context, device.device_profile_id, "device profile id")
        app = _get(context, self.s.applications, device.application_id)
        profile = _get(context, self.s.profiles, device.device_profile_id)
        if app.tenant_id != profile.tenant_id:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   "The device-profile and application must be under the same tenant")
        if device.join_eui and not EUI.match(device.join_eui):
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid join_eui")

    def Create(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            eui = _need_eui(context, request.device.dev_eui)
            if eui in self.s.devices:
                _abort(context, grpc.StatusCode.ALREADY_EXISTS,
                       f"Object already exists (id: {eui})")
            self._check_links(context, request.device)
            self.s.devices[eui] = _copy(request.device)
            return _empty()

    def Get(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            device = _get(context, self.s.devices, _need_eui(context, request.dev_eui))
            return api.GetDeviceResponse(device=_copy(device))

    def Update(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            eui = _need_eui(context, request.device.dev_eui)
            _get(context, self.s.devices, eui)
            self._check_links(context, request.device)
            self.s.devices[eui] = _copy(request.device)
            return _empty()

    def Delete(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            eui = _need_eui(context, request.dev_eui)
            _get(context, self.s.devices, eui)
            self.s.delete_device(eui)
            return _empty()

    def List(self, request: Any, context: Any) -> Any:
        _need_uuid(context, request.application_id, "application id")
        with self.s.lock:
            items = sorted((d for d in self.s.devices.values()
                            if d.application_id == request.application_id),
                           key=lambda d: d.dev_eui)
            return api.ListDevicesResponse(total_count=len(items), result=[
                api.DeviceListItem(dev_eui=d.dev_eui, name=d.name, description=d.description,
                                   device_profile_id=d.device_profile_id, tags=dict(d.tags))
                for d in _page(items, request.limit, request.offset)])

    def _keys(self, context: Any, keys: Any) -> Any:
        eui = _need_eui(context, keys.dev_eui)
        _get(context, self.s.devices, eui)
        for name in ("nwk_key", "app_key", "gen_app_key"):
            if not KEY.match(getattr(keys, name)):
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"invalid {name}")
        stored = _copy(keys)
        # ChirpStack stores 16-byte keys and answers them in lower-case hex.
        for name in ("nwk_key", "app_key", "gen_app_key"):
            setattr(stored, name, (getattr(keys, name) or "0" * 32).lower())
        return eui, stored

    def CreateKeys(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            eui, keys = self._keys(context, request.device_keys)
            if eui in self.s.keys:
                _abort(context, grpc.StatusCode.ALREADY_EXISTS,
                       f"Object already exists (id: {eui})")
            self.s.keys[eui] = keys
            return _empty()

    def GetKeys(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            keys = _get(context, self.s.keys, _need_eui(context, request.dev_eui))
            return api.GetDeviceKeysResponse(device_keys=_copy(keys))

    def UpdateKeys(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            eui, keys = self._keys(context, request.device_keys)
            _get(context, self.s.keys, eui)
            self.s.keys[eui] = keys
            return _empty()

    def Enqueue(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            item = _copy(request.queue_item)
            eui = _need_eui(context, item.dev_eui)
            _get(context, self.s.devices, eui)
            if not 1 <= item.f_port <= 223:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "f_port must be 1-223")
            item.id = str(uuid.uuid4())
            self.s.queue.setdefault(eui, []).append(item)
            return api.EnqueueDeviceQueueItemResponse(id=item.id)


class Gateways(api.GatewayServiceServicer):
    def __init__(self, store: Store) -> None:
        self.s = store

    def Create(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            gateway = _copy(request.gateway)
            gateway_id = _need_eui(context, gateway.gateway_id)
            if gateway_id in self.s.gateways:
                _abort(context, grpc.StatusCode.ALREADY_EXISTS,
                       f"Object already exists (id: {gateway_id})")
            _need_uuid(context, gateway.tenant_id, "tenant id")
            tenant = _get(context, self.s.tenants, gateway.tenant_id)
            if not tenant.can_have_gateways:
                _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                       "The tenant can not have gateways")
            gateway.gateway_id = gateway_id
            self.s.gateways[gateway_id] = gateway
            return _empty()

    def Get(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            gateway_id = _need_eui(context, request.gateway_id)
            gateway = _get(context, self.s.gateways, gateway_id)
            response = api.GetGatewayResponse(gateway=_copy(gateway))
            if gateway_id in self.s.gateway_seen:
                response.last_seen_at.CopyFrom(_timestamp(self.s.gateway_seen[gateway_id]))
            return response

    def Update(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            gateway_id = _need_eui(context, request.gateway.gateway_id)
            _get(context, self.s.gateways, gateway_id)
            tenant = _get(context, self.s.tenants, request.gateway.tenant_id)
            if not tenant.can_have_gateways:
                _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                       "The tenant can not have gateways")
            self.s.gateways[gateway_id] = _copy(request.gateway)
            return _empty()

    def Delete(self, request: Any, context: Any) -> Any:
        with self.s.lock:
            gateway_id = _need_eui(context, request.gateway_id)
            _get(context, self.s.gateways, gateway_id)
            del self.s.gateways[gateway_id]
            return _empty()

    def List(self, request: Any, context: Any) -> Any:
        now = datetime.now(UTC)
        with self.s.lock:
            items = sorted((g for g in self.s.gateways.values()
                            if not request.tenant_id or g.tenant_id == request.tenant_id),
                           key=lambda g: g.name)
            result = []
            for g in _page(items, request.limit, request.offset):
                item = api.GatewayListItem(
                    tenant_id=g.tenant_id, gateway_id=g.gateway_id, name=g.name,
                    description=g.description, state=self.s.gateway_state(g.gateway_id, now))
                if g.HasField("location"):
                    item.location.CopyFrom(g.location)
                if g.gateway_id in self.s.gateway_seen:
                    item.last_seen_at.CopyFrom(_timestamp(self.s.gateway_seen[g.gateway_id]))
                result.append(item)
            return api.ListGatewaysResponse(total_count=len(items), result=result)


def _empty() -> Any:
    from google.protobuf import empty_pb2

    return empty_pb2.Empty()


class Internal(api.InternalServiceServicer):
    """Login with e-mail and password: a session token (ChirpStack's JWT)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def Login(self, request: Any, context: Any) -> Any:
        with self.store.lock:
            user = self.store.users.get(request.email)
            if user is None or user[1] != request.password:
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, "Invalid username or password")
            jwt = f"jwt-{uuid.uuid4()}"
            self.store.sessions.add(jwt)
        return api.LoginResponse(jwt=jwt)


class Users(api.UserServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def List(self, request: Any, context: Any) -> Any:
        with self.store.lock:
            items = [api.UserListItem(id=u[0], email=email, is_admin=True, is_active=True)
                     for email, u in sorted(self.store.users.items())]
        return api.ListUsersResponse(total_count=len(items),
                                     result=_page(items, request.limit, request.offset))

    def UpdatePassword(self, request: Any, context: Any) -> Any:
        with self.store.lock:
            found = [u for u in self.store.users.values() if u[0] == request.user_id]
            if not found:
                _abort(context, grpc.StatusCode.NOT_FOUND,
                       f"Object does not exist (id: {request.user_id})")
            found[0][1] = request.password
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()


class _Gate(grpc.ServerInterceptor):
    """Counts calls, injects the failures asked for, then checks the token."""

    def __init__(self, store: Store, token: str) -> None:
        self.store = store
        self.token = token

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        service, method = details.method.rsplit("/", 2)[-2:]
        name = f"{service.rsplit('.', 1)[-1]}.{method}"
        with self.store.lock:
            self.store.calls[name] += 1
            pending = self.store.failures.get(name)
            injected = pending.pop(0) if pending else None
        if injected is not None:
            return _aborting(injected, "injected by the test")
        if name == "InternalService.Login":
            return continuation(details)
        metadata = dict(details.invocation_metadata or ())
        auth = metadata.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _aborting(grpc.StatusCode.UNAUTHENTICATED,
                             "authorization metadata must be in format 'Bearer <TOKEN>")
        if auth != f"Bearer {self.token}" and auth.removeprefix("Bearer ") not in \
                self.store.sessions:
            return _aborting(grpc.StatusCode.UNAUTHENTICATED, "InvalidSignature")
        return continuation(details)


def _aborting(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(handler)


class FakeChirpStack:
    """The fake server on 127.0.0.1:<port>; `store` is what it holds."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.store = Store()
        self._server: grpc.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeChirpStack:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                             interceptors=[_Gate(self.store, self.token)])
        api.add_TenantServiceServicer_to_server(Tenants(self.store), server)
        api.add_ApplicationServiceServicer_to_server(Applications(self.store), server)
        api.add_DeviceProfileServiceServicer_to_server(Profiles(self.store), server)
        api.add_DeviceServiceServicer_to_server(Devices(self.store), server)
        api.add_GatewayServiceServicer_to_server(Gateways(self.store), server)
        api.add_InternalServiceServicer_to_server(Internal(self.store), server)
        api.add_UserServiceServicer_to_server(Users(self.store), server)
        if server.add_insecure_port(self.target) == 0:
            raise RuntimeError(f"cannot listen on {self.target}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    # Conveniences for assertions -----------------------------------------------------

    def tenant_named(self, name: str) -> api.Tenant:
        (found,) = [t for t in self.store.tenants.values() if t.name == name]
        return found

    def applications_of(self, tenant_id: str) -> dict[str, api.Application]:
        return {a.name: a for a in self.store.applications.values() if a.tenant_id == tenant_id}

    def profiles_of(self, tenant_id: str) -> dict[str, api.DeviceProfile]:
        return {p.name: p for p in self.store.profiles.values() if p.tenant_id == tenant_id}

    def devices_in(self, app_ids: Iterable[str]) -> dict[str, api.Device]:
        ids = set(app_ids)
        return {e: d for e, d in self.store.devices.items() if d.application_id in ids}
