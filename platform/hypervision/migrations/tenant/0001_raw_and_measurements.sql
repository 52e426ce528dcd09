-- A member's own tables. Applied to every member schema by the tenant migration runner,
-- with search_path set to that schema and the member's owner role as current role, so
-- the member's owner role owns them. No schema name appears here on purpose.

-- Raw uplinks, kept as received: the platform can decode them again at any time, and a
-- member leaving takes them with it.
CREATE TABLE uplinks (
    time              timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    dev_eui           text NOT NULL,
    deduplication_id  uuid NOT NULL,
    f_cnt             bigint NOT NULL,
    f_port            integer NOT NULL,
    dr                integer,
    adr               boolean,
    confirmed         boolean,
    dev_addr          text,
    data              bytea NOT NULL,
    rssi              integer,          -- best gateway
    snr               real,             -- best gateway
    gateway_count     integer NOT NULL DEFAULT 0,
    gateways          text[],           -- ids of the gateways that heard it
    frequency         bigint,
    spreading_factor  integer,
    object            jsonb,            -- ChirpStack's decoded object, if any
    codec             text,             -- what produced the measurements
    codec_version     text,
    decode_error      text,
    decode_notes      jsonb,            -- codec warnings, disagreement with ChirpStack
    -- The full event exactly as ChirpStack sent it (json keeps the text as received;
    -- rxInfo/txInfo are in it: event->'rxInfo').
    event             json NOT NULL
);
SELECT create_hypertable('uplinks', 'time', chunk_time_interval => interval '7 days');
-- Idempotency: a redelivered event has the same deduplicationId and time.
CREATE UNIQUE INDEX uplinks_dedup_idx ON uplinks (deduplication_id, time);
-- Per-device history.
CREATE INDEX uplinks_device_time_idx ON uplinks (dev_eui, time DESC);
-- The replay guard (same DevEUI, fCnt and bytes, near in time), whatever the uplink rate.
CREATE INDEX uplinks_device_fcnt_idx ON uplinks (dev_eui, f_cnt, time);

-- Canonical measurements decoded from uplinks: one row per device, metric and time.
CREATE TABLE measurements (
    time              timestamptz NOT NULL,
    dev_eui           text NOT NULL,
    metric            text NOT NULL,
    value             double precision NOT NULL,
    unit              text NOT NULL,
    deduplication_id  uuid NOT NULL      -- the uplink it was decoded from
);
-- No default (time DESC) index: every query of measurements names a device or a metric,
-- which the indexes below serve; a third index would cost ~35 µs per uplink (bench/).
SELECT create_hypertable('measurements', 'time', chunk_time_interval => interval '7 days',
                         create_default_indexes => false);
CREATE UNIQUE INDEX measurements_key_idx ON measurements (dev_eui, metric, time);
CREATE INDEX measurements_metric_time_idx ON measurements (metric, time DESC);
-- Reprocessing replaces the measurements of given uplinks.
CREATE INDEX measurements_uplink_idx ON measurements (deduplication_id);

-- The latest known state of each device, for health views.
CREATE TABLE device_state (
    dev_eui            text PRIMARY KEY,
    last_seen          timestamptz,
    last_f_cnt         bigint,
    last_rssi          integer,
    last_snr           real,
    last_dr            integer,
    uplinks_seen       bigint NOT NULL DEFAULT 0,
    battery_level      real,
    external_power     boolean,
    margin             integer,
    status_at          timestamptz,
    last_event         text,
    last_event_at      timestamptz,
    -- Codec health, for the operator: uplinks that could not be decoded, and uplinks
    -- decoded with warnings or a disagreement with ChirpStack's own decoding.
    decode_errors        bigint NOT NULL DEFAULT 0,
    decode_warnings      bigint NOT NULL DEFAULT 0,
    last_decode_error    text,
    last_decode_error_at timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- join, ack, txack, log and status events, kept as received.
CREATE TABLE device_events (
    time              timestamptz NOT NULL,
    dev_eui           text NOT NULL,
    kind              text NOT NULL,
    deduplication_id  uuid,
    digest            bytea NOT NULL,   -- sha256 of the payload: a redelivery is kept once
    event             jsonb NOT NULL
);
SELECT create_hypertable('device_events', 'time', chunk_time_interval => interval '30 days');
CREATE UNIQUE INDEX device_events_digest_idx ON device_events (digest, time);
CREATE INDEX device_events_device_idx ON device_events (dev_eui, time DESC);
