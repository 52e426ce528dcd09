-- Rollups and the analytics derived from measurements (hypervision.analytics; see
-- platform/hypervision/analytics/README.md). The refresh job keeps every table below up to
-- date from the measurements written since its cursor (measurements.ingested_xid, tenant
-- migration 0020); nothing here is written by the ingestion pipeline itself.

-- The member's devices as analytics sees them, copied from the shared catalogue by the
-- refresh job, so that views and the member's read-only role never touch the catalogue
-- of other members.
CREATE TABLE analytics_devices (
    dev_eui             text PRIMARY KEY,
    name                text NOT NULL,
    model_id            text NOT NULL,
    category            text NOT NULL,              -- water, waste, air, energy, lighting
    data_class          text NOT NULL,
    building            text,                       -- location.building of the tenant file
    room                text,                       -- location.room
    typical_interval_s  integer NOT NULL,           -- the model's usual uplink interval
    variables           jsonb NOT NULL DEFAULT '{}',
    active              boolean NOT NULL DEFAULT true,
    synced_at           timestamptz NOT NULL DEFAULT now()
);

-- The member's analytics settings (calendars, thresholds, alert rules), copied by the
-- refresh job from its declaration (hypervision.analytics.config).
CREATE TABLE analytics_settings (
    id              integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    config          jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The state of the catalogue at the last copy of analytics_devices: when it has not
    -- changed, the copy is skipped.
    catalogue_mark  text
);

-- Where each incremental refresh stands. For `measurements`: every measurement written by
-- a transaction that `snapshot` (a pg_snapshot, as text) saw is in the rollups. For
-- `uplinks` (gateway activity): the hours from `watermark` on are recomputed at each run.
CREATE TABLE rollup_state (
    stream            text PRIMARY KEY,
    snapshot          text,
    watermark         timestamptz,
    last_run_at       timestamptz,
    last_duration_ms  double precision,
    last_hours        bigint,
    last_devices      integer
);

-- Hourly aggregates per device and metric (UTC hours).
CREATE TABLE rollup_hourly (
    bucket      timestamptz NOT NULL,
    dev_eui     text NOT NULL,
    metric      text NOT NULL,
    n           integer NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    sum         double precision NOT NULL,
    first       double precision NOT NULL,
    last        double precision NOT NULL,
    first_time  timestamptz NOT NULL,
    last_time   timestamptz NOT NULL,
    PRIMARY KEY (dev_eui, metric, bucket)
);
-- No index on the bucket alone: the key serves one device, the metric index the fleet,
-- and every index slows the refresh down.
SELECT create_hypertable('rollup_hourly', 'bucket', chunk_time_interval => interval '90 days',
                         create_default_indexes => false);
CREATE INDEX rollup_hourly_metric_idx ON rollup_hourly (metric, bucket DESC);

-- Daily aggregates per device and metric, days in the member's time zone, computed from
-- the hourly ones.
CREATE TABLE rollup_daily (
    day         date NOT NULL,
    dev_eui     text NOT NULL,
    metric      text NOT NULL,
    n           bigint NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    sum         double precision NOT NULL,
    first       double precision NOT NULL,
    last        double precision NOT NULL,
    first_time  timestamptz NOT NULL,
    last_time   timestamptz NOT NULL,
    PRIMARY KEY (dev_eui, metric, day)
);
SELECT create_hypertable('rollup_daily', 'day', chunk_time_interval => interval '1 year',
                         create_default_indexes => false);
CREATE INDEX rollup_daily_metric_idx ON rollup_daily (metric, day DESC);

-- Water consumed per meter and hour, from the cumulative index: rollovers, meter swaps
-- and backflow are accounted for; a volume spread over a gap between readings is
-- `estimated`.
CREATE TABLE water_hourly (
    bucket     timestamptz NOT NULL,
    dev_eui    text NOT NULL,
    volume_l   double precision NOT NULL,
    estimated  boolean NOT NULL,
    PRIMARY KEY (dev_eui, bucket)
);
SELECT create_hypertable('water_hourly', 'bucket', chunk_time_interval => interval '1 year');

-- The same per local day of the member (days and months of bills and dashboards).
CREATE TABLE water_daily (
    day        date NOT NULL,
    dev_eui    text NOT NULL,
    volume_l   double precision NOT NULL,
    estimated  boolean NOT NULL,
    hours      integer NOT NULL,
    PRIMARY KEY (dev_eui, day)
);

-- And per local month (`month` is its first day).
CREATE TABLE water_monthly (
    month      date NOT NULL,
    dev_eui    text NOT NULL,
    volume_l   double precision NOT NULL,
    estimated  boolean NOT NULL,
    days       integer NOT NULL,
    PRIMARY KEY (dev_eui, month)
);
CREATE INDEX water_monthly_month_idx ON water_monthly (month);
CREATE INDEX water_daily_day_idx ON water_daily (day);

-- What happened to an index between two readings (time = the later reading).
CREATE TABLE water_events (
    time           timestamptz NOT NULL,
    dev_eui        text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('rollover', 'replacement', 'backflow', 'gap')),
    previous_time  timestamptz NOT NULL,
    index_before   double precision NOT NULL,
    index_after    double precision NOT NULL,
    volume_l       double precision NOT NULL,
    PRIMARY KEY (dev_eui, time, kind)
);

-- Indoor air per sensor and hour, against the building's occupancy calendar: occupied
-- seconds, seconds above the two CO2 thresholds while occupied (each reading holds until
-- the next, at most twice the usual interval), and the ICONE counts of occupied readings
-- (n0 < 1000 ppm <= n1 <= 1700 ppm < n2).
CREATE TABLE air_hourly (
    bucket        timestamptz NOT NULL,
    dev_eui       text NOT NULL,
    occupied_s    integer NOT NULL,
    above_low_s   integer NOT NULL,
    above_high_s  integer NOT NULL,
    low_ppm       double precision NOT NULL,
    high_ppm      double precision NOT NULL,
    n0            integer NOT NULL,
    n1            integer NOT NULL,
    n2            integer NOT NULL,
    PRIMARY KEY (dev_eui, bucket)
);
SELECT create_hypertable('air_hourly', 'bucket', chunk_time_interval => interval '1 year');

-- The same per sensor and local day of the member.
CREATE TABLE air_daily (
    day           date NOT NULL,
    dev_eui       text NOT NULL,
    occupied_s    integer NOT NULL,
    above_low_s   integer NOT NULL,
    above_high_s  integer NOT NULL,
    n0            integer NOT NULL,
    n1            integer NOT NULL,
    n2            integer NOT NULL,
    PRIMARY KEY (dev_eui, day)
);
CREATE INDEX air_daily_day_idx ON air_daily (day);

-- Collections of waste containers: a sudden fall of the fill level.
CREATE TABLE waste_collections (
    time          timestamptz NOT NULL,
    dev_eui       text NOT NULL,
    level_before  double precision NOT NULL,
    level_after   double precision NOT NULL,
    PRIMARY KEY (dev_eui, time)
);

-- Uplinks heard per gateway and hour, over the member's uplinks.
CREATE TABLE gateway_hourly (
    bucket      timestamptz NOT NULL,
    gateway_id  text NOT NULL,
    uplinks     integer NOT NULL,
    devices     integer NOT NULL,
    PRIMARY KEY (gateway_id, bucket)
);

-- France's ICONE confinement index from the counts of CO2 readings: n1 between 1000 and
-- 1700 ppm, n2 above 1700, n in all; round((2.5 / log10 2) * log10(1 + f1 + 3 f2)),
-- 0 to 5, NULL without readings. Halves go up: the only one reachable is 2.5 (f1 + 3 f2
-- = 1), which the logarithms compute a hair either side of 2.5, hence the tolerance
-- (the same as hypervision.analytics.air.icone).
CREATE FUNCTION icone_index(n1 bigint, n2 bigint, n bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN n > 0 THEN
        floor((2.5 / log(2.0)) * log(1 + n1::numeric / n + 3 * n2::numeric / n)
              + 0.5 + 0.000000001)::integer
    END;
