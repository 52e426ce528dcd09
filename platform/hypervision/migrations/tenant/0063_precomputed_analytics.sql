-- What the dashboards and the analytics views read, precomputed by the refresh job
-- (hypervision.analytics: every dashboard query under 150 ms at p95 on a
-- département-sized member, bench/README.md). The views (views/*.sql) keep their names
-- and columns; they now read rows the refresh job keeps for the devices and days that
-- changed, instead of computing from raw readings or from 28-day windows at each read.
-- A member migrated with history gets these rows at its next refresh
-- (hypervision.analytics.rollups, `rederive`).

-- The devices' addresses (location.address), for the dashboards: they read the member's
-- own copy of its devices, whose size the planner knows, rather than
-- hv_shared.member_devices() for every row of a month. The next refresh copies them.
ALTER TABLE analytics_devices ADD COLUMN address text;
UPDATE analytics_settings SET catalogue_mark = NULL;

-- ICONE in double precision: the same formula as hypervision.analytics.air.icone (which
-- computes in floats); numeric logarithms cost tens of microseconds each, which a month
-- of rooms (thousands of rows) turns into most of a dashboard's time.
CREATE OR REPLACE FUNCTION icone_index(n1 bigint, n2 bigint, n bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN n > 0 THEN
        floor((2.5 / log(2.0::float8)) * log(1 + n1::float8 / n + 3 * n2::float8 / n)
              + 0.5 + 0.000000001)::integer
    END;

-- Water per meter and local day: the highest index of the day and the number of readings
-- (from rollup_daily), and the statistics of the meter's previous days used to judge the
-- day (abnormal_history_days before it, estimated days left out).
ALTER TABLE water_daily
    ADD COLUMN index_l          double precision,
    ADD COLUMN readings         integer,
    ADD COLUMN history_days     integer,
    ADD COLUMN history_mean_l   double precision,
    ADD COLUMN history_stdev_l  double precision;
-- dash_water_daily shows `day` as a timestamp (what Superset filters on): its time filter
-- reaches this index.
CREATE INDEX water_daily_day_timestamp_idx ON water_daily ((day::timestamp));

-- Night flow per meter and night (the local date the night ends on): the smallest hourly
-- volume over the member's night window, how many hours of the window have a volume,
-- how many of them are estimated, and how many hours the window has that night (one
-- more or less when the clocks change).
CREATE TABLE water_nights (
    night           date NOT NULL,
    dev_eui         text NOT NULL,
    min_volume_l    double precision NOT NULL,
    hours           integer NOT NULL,
    estimated_hours integer NOT NULL,
    expected_hours  integer NOT NULL,
    PRIMARY KEY (dev_eui, night)
);
CREATE INDEX water_nights_night_idx ON water_nights (night);

-- Indoor air per sensor and hour: CO2, temperature and humidity of the hour (count, sum,
-- CO2 maximum; from rollup_hourly), so that rooms are read from air_hourly alone.
ALTER TABLE air_hourly
    ADD COLUMN co2_n            integer,
    ADD COLUMN co2_sum          double precision,
    ADD COLUMN co2_max          double precision,
    ADD COLUMN temperature_n    integer,
    ADD COLUMN temperature_sum  double precision,
    ADD COLUMN humidity_n       integer,
    ADD COLUMN humidity_sum     double precision;

-- Each waste container's state at its latest reading: level (fill.level, or computed from
-- fill.distance and the declared depth), last collection, and fill rate (least-squares
-- slope over the readings since the later of the last collection and `waste.rate_days`
-- before the latest reading; at least two readings an hour apart).
CREATE TABLE waste_containers (
    dev_eui           text PRIMARY KEY,
    measured_at       timestamptz NOT NULL,
    level_pct         double precision NOT NULL,
    last_collection   timestamptz,
    rate_pct_per_day  double precision,
    rate_readings     integer NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE STATISTICS analytics_devices_name_address (ndistinct)
    ON name, address FROM analytics_devices;

DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON water_nights, waste_containers TO %I',
                   regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
