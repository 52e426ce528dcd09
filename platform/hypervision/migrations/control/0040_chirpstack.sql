-- ChirpStack in the catalogue (hypervision.chirpstack, see infra/chirpstack/README.md):
-- the ids of what provisioning created in ChirpStack for each member, and the state of
-- the network's gateways as last read from ChirpStack (GatewayService.List).

-- The ChirpStack tenant of each member. Provisioning finds its objects by these ids, and
-- only ever deletes (with --prune --yes) objects recorded here.
CREATE TABLE hv.chirpstack_tenants (
    member_slug  text PRIMARY KEY REFERENCES hv.members (slug),
    tenant_id    uuid NOT NULL UNIQUE,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- A member's applications in ChirpStack (one by default, named after the member).
CREATE TABLE hv.chirpstack_applications (
    member_slug     text NOT NULL REFERENCES hv.members (slug),
    name            text NOT NULL,
    application_id  uuid NOT NULL UNIQUE,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_slug, name)
);

-- One device profile per member and device model (profiles belong to a tenant).
CREATE TABLE hv.chirpstack_device_profiles (
    member_slug  text NOT NULL REFERENCES hv.members (slug),
    model_id     text NOT NULL,
    profile_id   uuid NOT NULL UNIQUE,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_slug, model_id)
);

-- Every gateway ChirpStack knows, as last read; for health dashboards and alerts.
-- state: ChirpStack's NEVER_SEEN, ONLINE or OFFLINE; state_since: when it last changed.
-- in_chirpstack is false once a gateway is no longer listed (kept for history).
CREATE TABLE hv.gateways (
    gateway_id     text PRIMARY KEY CHECK (gateway_id ~ '^[0-9a-f]{16}$'),
    tenant_id      uuid NOT NULL,
    member_slug    text REFERENCES hv.members (slug),
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    latitude       double precision,
    longitude      double precision,
    altitude       double precision,
    properties     jsonb NOT NULL DEFAULT '{}',
    state          text NOT NULL CHECK (state IN ('NEVER_SEEN', 'ONLINE', 'OFFLINE')),
    state_since    timestamptz NOT NULL,
    last_seen_at   timestamptz,
    in_chirpstack  boolean NOT NULL DEFAULT true,
    first_synced_at timestamptz NOT NULL DEFAULT now(),
    synced_at      timestamptz NOT NULL DEFAULT now()
);

-- Each observed change of a gateway's state: when it went offline, when it came back.
CREATE TABLE hv.gateway_state_changes (
    gateway_id    text NOT NULL REFERENCES hv.gateways (gateway_id) ON DELETE CASCADE,
    observed_at   timestamptz NOT NULL,
    state         text NOT NULL,
    previous      text,
    last_seen_at  timestamptz,
    PRIMARY KEY (gateway_id, observed_at)
);
