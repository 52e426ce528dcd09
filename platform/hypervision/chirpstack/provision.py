"""Members as code, ChirpStack's side: tenants, applications, device profiles, devices,
keys and the network's gateways, planned and applied over the gRPC API.

`plan()` reads only (ChirpStack and the catalogue) and returns ordered steps, each with a
symbol: `+` create, `~` change (the differing fields are named, never a key's value), `=`
unchanged, `-` in ChirpStack but no longer declared. `apply()` computes the plan again and
runs it; every step is idempotent, so applying twice changes nothing the second time.
`-` steps run only with `prune=True` (the CLI asks for `--prune --yes`), and only ever
delete objects of the member's own recorded tenant.

Desired state, per member (tenants/<slug>.yaml, the device catalogue, the network file):
1. a ChirpStack tenant named after the member (can have gateways if it owns them);
2. its application(s): one named after the slug unless the network file says otherwise;
3. one device profile per device model it uses (region and MAC version from the network
   file; the model's JavaScript codec as the profile's codec when it has one);
4. its devices (name, purpose, join EUI, codec variables) and their keys (LoRaWAN 1.0.x:
   the AppKey goes in `nwk_key`), the AppKeys read from the keys file;
5. for the gateways' owner, the declared gateways.

ChirpStack ids are recorded in the catalogue (hv.chirpstack_*). An object with no recorded
id is looked up by name before being created, so a lost record never duplicates a tenant.
See infra/chirpstack/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from chirpstack_api import api, common
from google.protobuf.message import Message

from hypervision.chirpstack.client import ChirpStack, NotFound
from hypervision.chirpstack.network import GatewaySpec, Network
from hypervision.tenancy.spec import Device, TenantSpec
from ingest.decode import Catalogue

MANAGED_TAG = "hypervision_member"


class ProvisionError(Exception):
    """Provisioning cannot proceed; the message says what to do first."""


@dataclass
class Ids:
    """ChirpStack ids known so far: from the catalogue, found in ChirpStack, or created."""

    tenants: dict[str, str] = field(default_factory=dict)
    applications: dict[tuple[str, str], str] = field(default_factory=dict)
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)


class Context:
    """What actions share while `apply` runs: the client, the catalogue, the ids."""

    def __init__(self, client: ChirpStack, conn: psycopg.Connection, ids: Ids) -> None:
        self.client = client
        self.conn = conn
        self.ids = ids

    def record_tenant(self, slug: str, tenant_id: str) -> None:
        self.ids.tenants[slug] = tenant_id
        self.conn.execute(
            """INSERT INTO hv.chirpstack_tenants (member_slug, tenant_id) VALUES (%s, %s)
               ON CONFLICT (member_slug) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
                   recorded_at = now()""",
            (slug, tenant_id),
        )

    def record_application(self, slug: str, name: str, application_id: str) -> None:
        self.ids.applications[(slug, name)] = application_id
        self.conn.execute(
            """INSERT INTO hv.chirpstack_applications (member_slug, name, application_id)
               VALUES (%s, %s, %s) ON CONFLICT (member_slug, name) DO UPDATE
               SET application_id = EXCLUDED.application_id, recorded_at = now()""",
            (slug, name, application_id),
        )

    def record_profile(self, slug: str, model_id: str, profile_id: str) -> None:
        self.ids.profiles[(slug, model_id)] = profile_id
        self.conn.execute(
            """INSERT INTO hv.chirpstack_device_profiles (member_slug, model_id, profile_id)
               VALUES (%s, %s, %s) ON CONFLICT (member_slug, model_id) DO UPDATE
               SET profile_id = EXCLUDED.profile_id, recorded_at = now()""",
            (slug, model_id, profile_id),
        )


Action = Callable[[Context], None]


@dataclass
class Step:
    symbol: str
    what: str
    action: Action | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.symbol} {self.what}"


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ids: Ids = field(default_factory=Ids)

    def add(self, symbol: str, what: str, *actions: Action | None) -> Step:
        runnable = [a for a in actions if a is not None]
        step = Step(symbol, what, _chain(runnable) if runnable else None)
        self.steps.append(step)
        return step

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.symbol in "+~-"]

    @property
    def deletions(self) -> list[Step]:
        return [s for s in self.steps if s.symbol == "-"]


def _chain(actions: Sequence[Action]) -> Action:
    def run(ctx: Context) -> None:
        for action in actions:
            action(ctx)

    return run


# Comparing and merging protobuf messages on the fields the platform manages ------------

# Maps merged rather than replaced: operators may add their own tags in ChirpStack.
_MERGED_MAPS = {"tags"}


def _value(message: Message, name: str) -> Any:
    descriptor = message.DESCRIPTOR.fields_by_name[name]
    value = getattr(message, name)
    if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
        return dict(value)
    if descriptor.is_repeated:
        return list(value)
    return value


def differences(existing: Message, desired: Message, fields: Iterable[str]) -> list[str]:
    """The managed fields whose value in ChirpStack differs from the desired one."""
    changed = []
    for name in fields:
        ours, theirs = _value(desired, name), _value(existing, name)
        if name in _MERGED_MAPS:
            if any(theirs.get(k) != v for k, v in ours.items()):
                changed.append(name)
        elif ours != theirs:
            changed.append(name)
    return changed


def merged(existing: Message, desired: Message, fields: Iterable[str]) -> Message:
    """A copy of `existing` with the managed fields set from `desired`; fields the platform
    does not manage (set by hand in ChirpStack) are kept."""
    result = type(existing)()
    result.CopyFrom(existing)
    for name in fields:
        value = getattr(desired, name)
        descriptor = result.DESCRIPTOR.fields_by_name[name]
        target = getattr(result, name)
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            if name not in _MERGED_MAPS:
                target.clear()
            target.update(dict(value))
        elif descriptor.is_repeated:
            del target[:]
            target.extend(value)
        elif descriptor.message_type is not None:
            if desired.HasField(name):
                target.CopyFrom(value)
            else:
                result.ClearField(name)
        else:
            setattr(result, name, value)
    return result


# Desired objects --------------------------------------------------------------------------

TENANT_FIELDS = ("name", "description", "can_have_gateways", "tags")
APPLICATION_FIELDS = ("name", "description", "tags")
PROFILE_FIELDS = (
    "name", "description", "region", "region_config_id", "mac_version",
    "reg_params_revision", "adr_algorithm_id", "payload_codec_runtime",
    "payload_codec_script", "flush_queue_on_activate", "uplink_interval",
    "device_status_req_interval", "supports_otaa", "supports_class_c", "class_c_timeout",
    "tags",
)
DEVICE_FIELDS = (
    "name", "description", "application_id", "device_profile_id", "join_eui", "variables",
    "tags",
)
GATEWAY_FIELDS = ("name", "description", "location", "tenant_id", "stats_interval", "tags")
# LoRaWAN 1.0.x: the root key is the AppKey, which ChirpStack stores as nwk_key; app_key is
# the 1.1 AppKey and stays all zeros.
ZERO_KEY = "0" * 32


def desired_tenant(spec: TenantSpec, network: Network) -> api.Tenant:
    owns_gateways = spec.identity.kind == "syndicate" or (
        network.gateways is not None and network.gateways.owner == spec.name
    )
    return api.Tenant(
        name=spec.identity.name,
        description=f"Hypervision member {spec.name} ({spec.identity.kind}); managed from"
                    f" tenants/{spec.name}.yaml",
        can_have_gateways=owns_gateways,
        tags={MANAGED_TAG: spec.name},
    )


def desired_application(spec: TenantSpec, name: str, tenant_id: str) -> api.Application:
    return api.Application(
        name=name,
        tenant_id=tenant_id,
        description=f"Devices of {spec.identity.name}; managed by Hypervision",
        tags={MANAGED_TAG: spec.name},
    )


def codec_script(catalogue: Catalogue, model_id: str) -> str | None:
    """The source of the model's JavaScript codec, or None when it has none (built-in
    Python codecs run in the platform only; ChirpStack then sends no `object`)."""
    model = catalogue.get(model_id)
    if model.codec is None or model.codec.js is None:
        return None
    # The catalogue resolved the file's path when it loaded the model.
    entry = catalogue._entries[model_id]
    assert entry.js_path is not None
    return entry.js_path.read_text(encoding="utf-8")


def desired_profile(
    slug: str, model_id: str, tenant_id: str, catalogue: Catalogue, network: Network
) -> api.DeviceProfile:
    model = catalogue.get(model_id)
    options = network.profile(model_id)
    script = codec_script(catalogue, model_id)
    tags = {MANAGED_TAG: slug, "hypervision_model": model_id}
    if model.codec is not None:
        tags["codec"] = model.codec_name
        tags["codec_version"] = model.codec.version
    return api.DeviceProfile(
        tenant_id=tenant_id,
        name=model_id,
        description=f"{model.vendor} {model.model}; managed by Hypervision",
        region=common.Region.Value(network.region),
        region_config_id=network.region_config_id,
        mac_version=common.MacVersion.Value(network.mac_version),
        reg_params_revision=common.RegParamsRevision.Value(network.reg_params_revision),
        adr_algorithm_id=network.adr_algorithm_id,
        payload_codec_runtime=api.CodecRuntime.JS if script else api.CodecRuntime.NONE,
        payload_codec_script=script or "",
        flush_queue_on_activate=True,
        uplink_interval=model.typical_interval_s,
        device_status_req_interval=options.device_status_req_interval,
        supports_otaa=True,
        supports_class_c=options.supports_class_c,
        class_c_timeout=options.class_c_timeout if options.supports_class_c else 0,
        tags=tags,
    )


def desired_device(
    spec: TenantSpec, device: Device, application_id: str, profile_id: str, network: Network
) -> api.Device:
    return api.Device(
        dev_eui=device.dev_eui,
        name=device.name,
        description=device.purpose,
        application_id=application_id,
        device_profile_id=profile_id,
        join_eui=network.device(device.dev_eui).join_eui,
        variables=dict(device.variables),
        tags={MANAGED_TAG: spec.name, "data_class": device.data_class},
    )


def desired_gateway(gateway: GatewaySpec, tenant_id: str) -> api.Gateway:
    message = api.Gateway(
        gateway_id=gateway.gateway_id,
        name=gateway.name,
        description=gateway.description,
        tenant_id=tenant_id,
        stats_interval=gateway.stats_interval,
        tags=dict(gateway.tags),
    )
    if gateway.location is not None:
        message.location.CopyFrom(common.Location(
            latitude=gateway.location.lat, longitude=gateway.location.lon,
            altitude=gateway.location.altitude, source=common.LocationSource.CONFIG,
        ))
    return message


# Reading what exists ----------------------------------------------------------------------


@dataclass
class Recorded:
    """The ids the catalogue holds, and which DevEUIs members declare (any member)."""

    tenants: dict[str, str]
    applications: dict[str, dict[str, str]]
    profiles: dict[str, dict[str, str]]
    members: set[str]
    active_devices: dict[str, str]


def _recorded(conn: psycopg.Connection) -> Recorded:
    applications: dict[str, dict[str, str]] = {}
    for slug, name, app_id in conn.execute(
        "SELECT member_slug, name, application_id::text FROM hv.chirpstack_applications"
    ).fetchall():
        applications.setdefault(slug, {})[name] = app_id
    profiles: dict[str, dict[str, str]] = {}
    for slug, model_id, profile_id in conn.execute(
        "SELECT member_slug, model_id, profile_id::text FROM hv.chirpstack_device_profiles"
    ).fetchall():
        profiles.setdefault(slug, {})[model_id] = profile_id
    return Recorded(
        tenants=dict(conn.execute(
            "SELECT member_slug, tenant_id::text FROM hv.chirpstack_tenants").fetchall()),
        applications=applications,
        profiles=profiles,
        members={r[0] for r in conn.execute("SELECT slug FROM hv.members").fetchall()},
        active_devices=dict(conn.execute(
            "SELECT dev_eui, member_slug FROM hv.devices WHERE active").fetchall()),
    )


def _find_tenant(client: ChirpStack, tenant_id: str | None, name: str) -> api.Tenant | None:
    """The tenant with the recorded id, else the only one with exactly this name."""
    if tenant_id:
        found = client.get_or_none("TenantService", "Get", api.GetTenantRequest(id=tenant_id))
        if found is not None:
            return found.tenant
    same = [t for t in client.list_all("TenantService", api.ListTenantsRequest(search=name))
            if t.name == name]
    if len(same) > 1:
        raise ProvisionError(
            f"{len(same)} ChirpStack tenants are named '{name}' and none is recorded in the"
            " catalogue: rename or delete the extra ones in ChirpStack"
        )
    if not same:
        return None
    return client.call("TenantService", "Get", api.GetTenantRequest(id=same[0].id)).tenant


# Planning ---------------------------------------------------------------------------------


def plan(
    conn: psycopg.Connection,
    client: ChirpStack,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    network: Network,
    keys: dict[str, str],
) -> Plan:
    """What `apply` would do, in order. Reads ChirpStack and the catalogue only."""
    recorded = _recorded(conn)
    for spec in specs:
        if spec.name not in recorded.members:
            raise ProvisionError(
                f"member {spec.name} is not in the catalogue yet: run `hypervision tenants"
                " apply` first"
            )
        unknown = sorted({d.model for d in spec.devices} - set(catalogue.models))
        if unknown:
            raise ProvisionError(f"{spec.name}: unknown device model(s) {', '.join(unknown)}")
    result = Plan()
    declared = {d.dev_eui for s in specs for d in s.devices}
    for spec in specs:
        _MemberPlanner(result, client, spec, catalogue, network, keys, recorded,
                       declared).run()
    _plan_gateways(result, client, specs, network)
    for slug in sorted(set(recorded.tenants) - {s.name for s in specs}):
        result.add("=", f"{slug}: not declared here; its ChirpStack tenant is left as it is")
    return result


@dataclass(frozen=True)
class _Kind:
    """One kind of object a member has several of in its tenant, each under a key (an
    application's name, a device profile's model): how to list, read, build, create,
    update, delete it and record its id, for _MemberPlanner._tenant_objects."""

    label: str
    service: str
    fields: tuple[str, ...]
    list_request: Callable[[str], Message]
    get_request: Callable[[str], Message]
    current: Callable[[Any], Any]
    desired: Callable[[_MemberPlanner, str, str], Message]
    create_request: Callable[[Message], Message]
    update_request: Callable[[Message], Message]
    delete_request: Callable[[str], Message]
    recorded: Callable[[Recorded], dict[str, dict[str, str]]]
    ids: Callable[[Ids], dict[tuple[str, str], str]]
    record: Callable[[Context, str, str, str], None]
    # Forgets a deleted object's id: parameters (member slug, key).
    forget: str
    removal_note: str = ""


class _MemberPlanner:
    """The steps of one member, in dependency order: tenant, applications, profiles,
    devices and keys, then (for prune) what is no longer declared."""

    def __init__(self, plan: Plan, client: ChirpStack, spec: TenantSpec, catalogue: Catalogue,
                 network: Network, keys: dict[str, str], recorded: Recorded,
                 declared: set[str]) -> None:
        self.plan = plan
        self.client = client
        self.spec = spec
        self.slug = spec.name
        self.catalogue = catalogue
        self.network = network
        self.keys = keys
        self.recorded = recorded
        self.declared = declared
        self.removals: list[tuple[str, Action]] = []
        self.tenant_id: str | None = None

    def run(self) -> None:
        self._tenant()
        apps = self._tenant_objects(APPLICATIONS, sorted(
            {self.network.application_of(self.slug)}
            | {self.network.application_of(self.slug, d.dev_eui) for d in self.spec.devices}))
        self._tenant_objects(PROFILES, sorted({d.model for d in self.spec.devices}))
        self._devices(apps)
        for what, action in self.removals:
            self.plan.add("-", what, action)

    # 1. tenant
    def _tenant(self) -> None:
        slug, desired = self.slug, desired_tenant(self.spec, self.network)
        recorded_id = self.recorded.tenants.get(slug)
        tenant = _find_tenant(self.client, recorded_id, desired.name)
        if tenant is None:
            def create(ctx: Context) -> None:
                response = ctx.client.call("TenantService", "Create",
                                           api.CreateTenantRequest(tenant=desired))
                ctx.record_tenant(slug, response.id)

            self.plan.add("+", f"{slug}: tenant '{desired.name}'", create)
            return
        self.tenant_id = tenant.id
        self.plan.ids.tenants[slug] = tenant.id
        record: Callable[[Context], None] | None = None
        if recorded_id != tenant.id:
            def record_found(ctx: Context, tenant_id: str = tenant.id) -> None:
                ctx.record_tenant(slug, tenant_id)

            record = record_found

        self._update_step(f"{slug}: tenant '{desired.name}'", tenant, desired, TENANT_FIELDS,
                          "TenantService", lambda m: api.UpdateTenantRequest(tenant=m), record,
                          found_note=", found by name and recorded")

    # 2. applications, 3. device profiles
    def _tenant_objects(self, kind: _Kind, keys: list[str]) -> list[str]:
        """Plan the member's objects of one kind in its tenant, one per key: `+` when
        neither the recorded id nor the name finds it, else `~` or `=` (recording an id
        found by name); recorded objects no longer declared go to the removals. Returns
        the ids of the member's objects of this kind that exist in ChirpStack."""
        slug = self.slug
        recorded = kind.recorded(self.recorded).get(slug, {})
        known = kind.ids(self.plan.ids)
        existing: dict[str, Any] = {}
        if self.tenant_id:
            existing = {o.id: o for o in self.client.list_all(
                kind.service, kind.list_request(self.tenant_id))}
        for key in keys:
            object_id = recorded.get(key)
            if object_id not in existing:
                by_name = [o.id for o in existing.values() if o.name == key]
                object_id = by_name[0] if by_name else None
            label = f"{slug}: {kind.label} '{key}'"
            if object_id is None:
                def create(ctx: Context, key: str = key) -> None:
                    message = kind.desired(self, key, ctx.ids.tenants[slug])
                    response = ctx.client.call(kind.service, "Create",
                                               kind.create_request(message))
                    kind.record(ctx, slug, key, response.id)

                self.plan.add("+", label, create)
                continue
            known[(slug, key)] = object_id
            current = kind.current(self.client.call(kind.service, "Get",
                                                    kind.get_request(object_id)))
            desired = kind.desired(self, key, current.tenant_id)
            record = None
            if recorded.get(key) != object_id:
                def record(ctx: Context, key: str = key, object_id: str = object_id) -> None:
                    kind.record(ctx, slug, key, object_id)

            self._update_step(label, current, desired, kind.fields, kind.service,
                              kind.update_request, record)
        for key, object_id in sorted(recorded.items()):
            if key not in keys and object_id in existing:
                def delete(ctx: Context, key: str = key, object_id: str = object_id) -> None:
                    ctx.client.call(kind.service, "Delete", kind.delete_request(object_id))
                    ctx.conn.execute(kind.forget, (slug, key))

                self.removals.append((f"{slug}: {kind.label} '{key}'{kind.removal_note}",
                                      delete))
        return [i for i in existing if i in known.values() or i in recorded.values()]

    def _update_step(self, label: str, current: Message, desired: Message, fields: Any,
                     service: str, request: Callable[[Message], Message],
                     record: Callable[[Context], None] | None, found_note: str = "") -> None:
        """Plan `~` (an Update call with the changed fields merged into the current
        object) when the object drifted from the files, else `=` (with `found_note` when
        there is an id to record); either way `record` (when given) stores its id in the
        catalogue."""
        changed = differences(current, desired, fields)
        if not changed:
            self.plan.add("=", label + (found_note if record else ""), record)
            return
        update = merged(current, desired, fields)

        def apply_update(ctx: Context) -> None:
            ctx.client.call(service, "Update", request(update))

        self.plan.add("~", f"{label} ({', '.join(changed)})", apply_update, record)

    # 4. devices and keys
    def _desired_device(self, device: Device, ids: Ids) -> api.Device:
        app = ids.applications.get((self.slug, self.network.application_of(self.slug,
                                                                             device.dev_eui)))
        profile = ids.profiles.get((self.slug, device.model))
        return desired_device(self.spec, device, app or "", profile or "", self.network)

    def _devices(self, app_ids: list[str]) -> None:
        slug, unchanged = self.slug, 0
        for device in self.spec.devices:
            label = f"{slug}: device {device.dev_eui} '{device.name}' ({device.model})"
            key = self.keys.get(device.dev_eui)
            found = self.client.get_or_none("DeviceService", "Get",
                                            api.GetDeviceRequest(dev_eui=device.dev_eui))
            if found is None:
                if key is None:
                    self.plan.warnings.append(
                        f"{slug}: device {device.dev_eui} has no AppKey in the keys file; it"
                        " cannot join until one is added and applied")
                self.plan.add("+", label + (", with its AppKey" if key else ""),
                              self._create_device(device), self._keys_action(device, None))
                continue
            desired = self._desired_device(device, self.plan.ids)
            changed = differences(found.device, desired, DEVICE_FIELDS)
            keys_state = self._keys_state(device.dev_eui, key)
            if key is None and self.client.get_or_none(
                "DeviceService", "GetKeys", api.GetDeviceKeysRequest(dev_eui=device.dev_eui)
            ) is None:
                self.plan.warnings.append(
                    f"{slug}: device {device.dev_eui} has no AppKey, in ChirpStack nor in the"
                    " keys file; it cannot join until one is added and applied")
            if not changed and keys_state is None:
                unchanged += 1
                continue
            actions: list[Action | None] = []
            if changed:
                actions.append(self._update_device(device, found.device))
            if keys_state is not None:
                actions.append(self._keys_action(device, keys_state))
            what = ", ".join(changed + ([keys_state] if keys_state else []))
            self.plan.add("~", f"{label} ({what})", *actions)
        if unchanged:
            self.plan.add("=", f"{slug}: {unchanged} device(s) up to date in ChirpStack")
        self._stray_devices(app_ids)

    def _keys_state(self, dev_eui: str, key: str | None) -> str | None:
        """None when the keys need nothing; else the name of the change ('AppKey set' or
        'AppKey')."""
        if key is None:
            return None
        try:
            current = self.client.call("DeviceService", "GetKeys",
                                       api.GetDeviceKeysRequest(dev_eui=dev_eui)).device_keys
        except NotFound:
            return "AppKey set"
        return None if current.nwk_key.lower() == key else "AppKey"

    def _create_device(self, device: Device) -> Action:
        def run(ctx: Context) -> None:
            message = self._desired_device(device, ctx.ids)
            ctx.client.call("DeviceService", "Create", api.CreateDeviceRequest(device=message))

        return run

    def _update_device(self, device: Device, current: api.Device) -> Action:
        def run(ctx: Context) -> None:
            update = merged(current, self._desired_device(device, ctx.ids), DEVICE_FIELDS)
            ctx.client.call("DeviceService", "Update", api.UpdateDeviceRequest(device=update))

        return run

    def _keys_action(self, device: Device, state: str | None) -> Action | None:
        key = self.keys.get(device.dev_eui)
        if key is None:
            return None

        def run(ctx: Context) -> None:
            keys = api.DeviceKeys(dev_eui=device.dev_eui, nwk_key=key, app_key=ZERO_KEY)
            if state == "AppKey":
                ctx.client.call("DeviceService", "UpdateKeys",
                                api.UpdateDeviceKeysRequest(device_keys=keys))
            else:
                ctx.client.call("DeviceService", "CreateKeys",
                                api.CreateDeviceKeysRequest(device_keys=keys))

        return run

    def _stray_devices(self, app_ids: list[str]) -> None:
        """Devices in the member's applications that no member declares any more."""
        for app_id in app_ids:
            for item in self.client.list_all("DeviceService",
                                             api.ListDevicesRequest(application_id=app_id)):
                eui = item.dev_eui.lower()
                other = self.recorded.active_devices.get(eui)
                if eui in self.declared or (other is not None and other != self.slug):
                    continue

                def delete(ctx: Context, eui: str = eui) -> None:
                    ctx.client.call("DeviceService", "Delete",
                                    api.DeleteDeviceRequest(dev_eui=eui))

                self.removals.append((f"{self.slug}: device {eui} '{item.name}'", delete))


APPLICATIONS = _Kind(
    label="application",
    service="ApplicationService",
    fields=APPLICATION_FIELDS,
    list_request=lambda tenant_id: api.ListApplicationsRequest(tenant_id=tenant_id),
    get_request=lambda app_id: api.GetApplicationRequest(id=app_id),
    current=lambda response: response.application,
    desired=lambda planner, name, tenant_id: desired_application(planner.spec, name,
                                                                 tenant_id),
    create_request=lambda m: api.CreateApplicationRequest(application=m),
    update_request=lambda m: api.UpdateApplicationRequest(application=m),
    delete_request=lambda app_id: api.DeleteApplicationRequest(id=app_id),
    recorded=lambda recorded: recorded.applications,
    ids=lambda ids: ids.applications,
    record=Context.record_application,
    forget="DELETE FROM hv.chirpstack_applications WHERE member_slug = %s AND name = %s",
    removal_note=" (and its devices)",
)

PROFILES = _Kind(
    label="device profile",
    service="DeviceProfileService",
    fields=PROFILE_FIELDS,
    list_request=lambda tenant_id: api.ListDeviceProfilesRequest(tenant_id=tenant_id,
                                                                 tenant_only=True),
    get_request=lambda profile_id: api.GetDeviceProfileRequest(id=profile_id),
    current=lambda response: response.device_profile,
    desired=lambda planner, model_id, tenant_id: desired_profile(
        planner.slug, model_id, tenant_id, planner.catalogue, planner.network),
    create_request=lambda m: api.CreateDeviceProfileRequest(device_profile=m),
    update_request=lambda m: api.UpdateDeviceProfileRequest(device_profile=m),
    delete_request=lambda profile_id: api.DeleteDeviceProfileRequest(id=profile_id),
    recorded=lambda recorded: recorded.profiles,
    ids=lambda ids: ids.profiles,
    record=Context.record_profile,
    forget="DELETE FROM hv.chirpstack_device_profiles WHERE member_slug = %s AND model_id = %s",
)


def _plan_gateways(plan: Plan, client: ChirpStack, specs: Sequence[TenantSpec],
                   network: Network) -> None:
    """The declared gateways, in the owner member's tenant."""
    if network.gateways is None:
        return
    owner = network.gateways.owner
    if owner not in {s.name for s in specs}:
        if network.gateways.items:
            plan.warnings.append(f"gateways: their owner '{owner}' is not among the members"
                                 " applied here; gateways skipped")
        return
    tenant_id = plan.ids.tenants.get(owner)
    unchanged = 0
    for gateway in network.gateways.items:
        label = f"gateway {gateway.gateway_id} '{gateway.name}'"
        found = client.get_or_none("GatewayService", "Get",
                                   api.GetGatewayRequest(gateway_id=gateway.gateway_id))
        if found is None:
            def create(ctx: Context, gateway: GatewaySpec = gateway) -> None:
                message = desired_gateway(gateway, ctx.ids.tenants[owner])
                ctx.client.call("GatewayService", "Create",
                                api.CreateGatewayRequest(gateway=message))

            plan.add("+", f"{owner}: {label}", create)
            continue
        changed = differences(found.gateway, desired_gateway(gateway, tenant_id or ""),
                              GATEWAY_FIELDS)
        if not changed:
            unchanged += 1
            continue

        def update(ctx: Context, gateway: GatewaySpec = gateway,
                   current: api.Gateway = found.gateway) -> None:
            message = merged(current, desired_gateway(gateway, ctx.ids.tenants[owner]),
                             GATEWAY_FIELDS)
            ctx.client.call("GatewayService", "Update", api.UpdateGatewayRequest(gateway=message))

        plan.add("~", f"{owner}: {label} ({', '.join(changed)})", update)
    if unchanged:
        plan.add("=", f"{owner}: {unchanged} gateway(s) up to date in ChirpStack")
    if tenant_id:
        declared = {g.gateway_id for g in network.gateways.items}
        for item in client.list_all("GatewayService",
                                    api.ListGatewaysRequest(tenant_id=tenant_id)):
            if item.gateway_id.lower() in declared:
                continue

            def delete(ctx: Context, gateway_id: str = item.gateway_id) -> None:
                ctx.client.call("GatewayService", "Delete",
                                api.DeleteGatewayRequest(gateway_id=gateway_id))

            plan.add("-", f"{owner}: gateway {item.gateway_id} '{item.name}'", delete)


def apply(
    conn: psycopg.Connection,
    client: ChirpStack,
    specs: Sequence[TenantSpec],
    catalogue: Catalogue,
    network: Network,
    keys: dict[str, str],
    *,
    prune: bool = False,
    log: Callable[[str], None] = print,
) -> Plan:
    """Recompute the plan and run it. `-` steps run only with prune=True.

    ChirpStack has no transactions: each step is applied and its id recorded as it goes,
    so an interrupted apply is completed by the next one.
    """
    result = plan(conn, client, specs, catalogue, network, keys)
    ctx = Context(client, conn, result.ids)
    for step in result.steps:
        if step.symbol == "-" and not prune:
            continue
        if step.symbol != "=":
            log(str(step))
        if step.action is not None:
            step.action(ctx)
    return result
