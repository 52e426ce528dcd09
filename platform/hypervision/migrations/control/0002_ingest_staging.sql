-- Templates of the ingestion workers' staging tables. Each worker connection creates
-- session-private temporary tables LIKE these once, COPYs every batch into them (all
-- members at once, tagged with member_slug), then moves each member's rows into that
-- member's hypertables as the member's writer role. These tables themselves stay empty.

CREATE TABLE hv.staging_uplinks (
    member_slug       text NOT NULL,
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
    rssi              integer,
    snr               real,
    gateway_count     integer NOT NULL,
    gateways          text[],
    frequency         bigint,
    spreading_factor  integer,
    object            jsonb,
    codec             text,
    codec_version     text,
    decode_error      text,
    decode_notes      jsonb,
    event             json NOT NULL
);

CREATE TABLE hv.staging_measurements (
    member_slug       text NOT NULL,
    time              timestamptz NOT NULL,
    dev_eui           text NOT NULL,
    metric            text NOT NULL,
    value             double precision NOT NULL,
    unit              text NOT NULL,
    deduplication_id  uuid NOT NULL
);

CREATE TABLE hv.staging_events (
    member_slug       text NOT NULL,
    time              timestamptz NOT NULL,
    dev_eui           text NOT NULL,
    kind              text NOT NULL,
    deduplication_id  uuid,
    digest            bytea NOT NULL,
    event             jsonb NOT NULL
);
