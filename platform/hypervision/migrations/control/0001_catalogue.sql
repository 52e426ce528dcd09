-- The shared catalogue: members, device models, devices, dead letters, ingestion outcomes.
-- Applied once per database, as the superuser, by `hypervision migrate`.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE SCHEMA IF NOT EXISTS hv;

-- One row per member collectivité (declared in tenants/<slug>.yaml).
CREATE TABLE hv.members (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z][a-z0-9_]{1,39}$'),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('syndicate', 'commune', 'intercommunality')),
    siren       text CHECK (siren ~ '^[0-9]{9}$'),
    schema_name text NOT NULL UNIQUE,
    spec        jsonb NOT NULL DEFAULT '{}',
    suspended   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Device models known to the platform (ingest/decode/models/*.yaml), mirrored for SQL users.
CREATE TABLE hv.device_models (
    id          text PRIMARY KEY,
    vendor      text NOT NULL,
    model       text NOT NULL,
    category    text NOT NULL,
    spec        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The device registry: which member owns which DevEUI. A DevEUI belongs to one member.
CREATE TABLE hv.devices (
    dev_eui      text PRIMARY KEY CHECK (dev_eui ~ '^[0-9a-f]{16}$'),
    member_slug  text NOT NULL REFERENCES hv.members (slug),
    model_id     text NOT NULL REFERENCES hv.device_models (id),
    name         text NOT NULL,
    variables    jsonb NOT NULL DEFAULT '{}',
    spec         jsonb NOT NULL DEFAULT '{}',
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_member_idx ON hv.devices (member_slug);

-- Every event that could not be processed, with its reason and the bytes as received.
-- digest = sha256(origin || payload): a redelivered bad message is kept once.
CREATE TABLE hv.dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    origin       text NOT NULL,
    event_type   text,
    dev_eui      text,
    member_slug  text,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    payload      bytea NOT NULL,
    digest       bytea NOT NULL UNIQUE
);
CREATE INDEX dead_letters_received_idx ON hv.dead_letters (received_at);
CREATE INDEX dead_letters_member_idx ON hv.dead_letters (member_slug, received_at);

-- One outcome per event, counted per member and day (usage metering, ingestion health).
-- member_slug is '' when the event could not be attributed to a member.
CREATE TABLE hv.ingest_outcomes (
    day          date NOT NULL,
    member_slug  text NOT NULL,
    event_type   text NOT NULL,
    outcome      text NOT NULL,
    events       bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, member_slug, event_type, outcome)
);
