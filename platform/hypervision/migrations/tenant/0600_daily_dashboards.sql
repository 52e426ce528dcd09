-- What the services' daily dashboards (dashboards/*.yaml) need beyond the tables kept so
-- far: water leaks, abnormal days, events and data quality; waste containers to collect,
-- the planned round and collections; indoor air per room and week with ventilation
-- advice; energy and public lighting; gateways and battery forecasts. Their views
-- (views/dash_*.sql) read the tables the refresh job keeps (hypervision.analytics), never
-- the raw readings in full, so that a chart stays fast on a member with tens of thousands
-- of devices (bench/dashboards.py). Columns are English; dashboards/datasets.yaml gives
-- their French labels.

-- The devices' coordinates (location.lat, location.lon): lighting in daylight and the
-- collection round need them. The next refresh copies them (analytics.members.sync).
ALTER TABLE analytics_devices
    ADD COLUMN lat double precision,
    ADD COLUMN lon double precision;
UPDATE analytics_settings SET catalogue_mark = NULL;

-- Each night's run of continuous nights ending with it, and the sum of their smallest
-- flows (water._runs keeps them at each refresh), so that the leak list reads one row per
-- meter rather than walking back through its nights. Computed here for the nights
-- already kept.
ALTER TABLE water_nights
    ADD COLUMN run_nights integer NOT NULL DEFAULT 0,
    ADD COLUMN run_volume_l double precision NOT NULL DEFAULT 0;
WITH islands AS (
    SELECT dev_eui, night, min_volume_l,
           night - row_number() OVER (PARTITION BY dev_eui ORDER BY night)::integer AS grp
    FROM water_nights
    WHERE min_volume_l > 0 AND estimated_hours = 0 AND hours >= expected_hours
),
runs AS (
    SELECT dev_eui, night,
           night - min(night) OVER (PARTITION BY dev_eui, grp) + 1 AS run_nights,
           sum(min_volume_l) OVER (PARTITION BY dev_eui, grp ORDER BY night) AS run_volume_l
    FROM islands
)
UPDATE water_nights n SET run_nights = r.run_nights, run_volume_l = r.run_volume_l
FROM runs r WHERE n.dev_eui = r.dev_eui AND n.night = r.night;

-- Air days are filtered by Superset on `day` as a timestamp (as water_daily's are).
CREATE INDEX air_daily_day_timestamp_idx ON air_daily ((day::timestamp));
-- Events over the last weeks, across meters (events are rare: the index is small).
CREATE INDEX water_events_time_idx ON water_events (time);

-- The collection round proposed for the day (hypervision.analytics.rounds): one row per
-- stop, in order, the depot first and last (dev_eui NULL). Rewritten as a whole at each
-- planning; `waste_round` holds how it was planned.
CREATE TABLE waste_round (
    id            integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    planned_at    timestamptz NOT NULL,
    containers    integer NOT NULL,
    distance_m    double precision NOT NULL,
    distances     text NOT NULL CHECK (distances IN ('road', 'straight-line')),
    plan_key      text NOT NULL            -- the containers planned, to skip a same plan
);
CREATE TABLE waste_round_stops (
    position      integer PRIMARY KEY,
    dev_eui       text,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    leg_m         double precision NOT NULL,  -- from the previous stop
    cumulative_m  double precision NOT NULL
);

-- Sun elevation in degrees at a time and place (NOAA's low-precision formulas, within a
-- fraction of a degree): above a few degrees it is daylight, and a lamp lit then is
-- wasted. Immutable: it depends on its arguments only.
CREATE FUNCTION sun_elevation(t timestamptz, lat double precision, lon double precision)
    RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        WITH g AS (
            SELECT 2 * pi() / 365 * (extract(doy FROM t AT TIME ZONE 'UTC') - 1
                   + (extract(hour FROM t AT TIME ZONE 'UTC') - 12) / 24) AS y,
                   extract(hour FROM t AT TIME ZONE 'UTC') * 60
                   + extract(minute FROM t AT TIME ZONE 'UTC') AS minutes),
        s AS (
            SELECT 229.18 * (0.000075 + 0.001868 * cos(y) - 0.032077 * sin(y)
                             - 0.014615 * cos(2 * y) - 0.040849 * sin(2 * y)) AS eqtime,
                   0.006918 - 0.399912 * cos(y) + 0.070257 * sin(y) - 0.006758 * cos(2 * y)
                   + 0.000907 * sin(2 * y) - 0.002697 * cos(3 * y) + 0.00148 * sin(3 * y)
                       AS decl,
                   minutes
            FROM g)
        SELECT 90 - degrees(acos(least(1.0, greatest(-1.0,
                   sin(radians(lat)) * sin(decl) + cos(radians(lat)) * cos(decl)
                   * cos(radians((minutes + eqtime + 4 * lon) / 4 - 180))))))
        FROM s);

DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON waste_round, waste_round_stops TO %I',
                   regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
