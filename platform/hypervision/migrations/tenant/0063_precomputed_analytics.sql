-- What the dashboards and the analytics views read, precomputed by the refresh job
-- (hypervision.analytics; issues 6 and 10: every dashboard query under 150 ms at p95 on a
-- département-sized member, bench/README.md). The views below keep their names and
-- columns; they now read rows the refresh job keeps for the devices and days that
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

-- Water: consumption per meter and local day, from water_daily (rollovers, meter swaps
-- and backflow accounted for, volumes spread over gaps; days of the member's time zone).
-- `index_m3` is the highest index of the day; a day inside a gap has a volume and no
-- reading. Every meter of water_daily is in analytics_devices (the refresh computes known
-- devices only, and a device that leaves stays there, inactive), so the names are plain
-- columns: the planner counts the meters a chart groups by from the statistics below,
-- and leaves the join out of the charts that name no device column. DevEUIs are
-- hexadecimal: compared byte by byte ("C"), counting distinct meters costs half as much
-- as through the database's libc locale. A changed collation needs the view recreated.
DROP VIEW dash_water_daily;
CREATE VIEW dash_water_daily AS
SELECT w.day::timestamp AS day,
       w.dev_eui COLLATE "C" AS dev_eui,
       d.name AS device_name,
       d.address,
       w.index_l / 1000.0 AS index_m3,
       w.volume_l / 1000.0 AS consumption_m3,
       coalesce(w.readings, 0)::bigint AS readings
FROM water_daily w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;
CREATE STATISTICS analytics_devices_name_address (ndistinct)
    ON name, address FROM analytics_devices;

-- Waste: the latest fill level of each container (waste_containers; the level of a
-- container reporting only its distance too), with what to do about it.
CREATE OR REPLACE VIEW dash_waste_latest AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.address,
       c.measured_at AS measured_at_utc,
       (c.measured_at AT TIME ZONE 'Europe/Paris') AS measured_at,
       c.level_pct AS fill_pct,
       CASE WHEN c.level_pct >= 80 THEN 'À vider'
            WHEN c.level_pct >= 60 THEN 'Bientôt plein'
            ELSE 'Normal' END AS fill_status
FROM waste_containers c
JOIN analytics_devices d ON d.dev_eui = c.dev_eui
WHERE d.active;

-- Night flow per meter and night; `debit_continu` when it never fell to zero on a night
-- whose hours are all measured. N such nights in a row are a leak suspicion
-- (water.leaks()).
CREATE OR REPLACE VIEW v_eau_nuits AS
SELECT n.night AS nuit,
       n.dev_eui AS dispositif,
       coalesce(d.name, n.dev_eui) AS compteur,
       n.min_volume_l AS debit_min_l_h,
       n.hours::bigint AS heures,
       n.estimated_hours::bigint AS heures_estimees,
       (n.min_volume_l > 0 AND n.estimated_hours = 0 AND n.hours >= n.expected_hours)
           AS debit_continu
FROM water_nights n
LEFT JOIN analytics_devices d ON d.dev_eui = n.dev_eui;

-- A day's consumption against the meter's own previous days (water.abnormal_days()); the
-- statistics are kept with the day, the verdict uses the current settings.
CREATE OR REPLACE VIEW v_eau_conso_anormale AS
SELECT w.day AS jour,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       coalesce(w.history_days, 0)::bigint AS jours_historique,
       w.history_mean_l AS moyenne_l,
       w.history_stdev_l AS ecart_type_l,
       (NOT w.estimated AND coalesce(w.history_days, 0) >= p.eau_historique_min_jours
        AND w.volume_l > w.history_mean_l
            + p.eau_ecarts_types * greatest(w.history_stdev_l, 0.1 * w.history_mean_l, 1.0))
           AS anormal
FROM water_daily w
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;

-- Waste: each container's state (waste_containers), its forecast and whether to empty it
-- at the next round (waste.containers()). The fill rate is that of the latest reading,
-- shown while that reading is less than `waste.rate_days` old; days until full count
-- from the latest reading; the next round is the first round day after today.
CREATE OR REPLACE VIEW v_dechets_conteneurs AS
WITH settings AS (
    SELECT p.dechets_seuil_pct, p.dechets_plein_pct, p.dechets_jours_vitesse, p.fuseau,
           (SELECT min(x.day) FROM generate_series(1, 7) i
                CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE p.fuseau)::date + i AS day) x
            WHERE (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])[extract(isodow FROM x.day)]
                  = ANY(p.dechets_jours_tournee)) AS prochaine_tournee
    FROM v_parametres p
),
rated AS (
    SELECT c.dev_eui, d.name, c.level_pct AS niveau, c.measured_at AS time,
           c.last_collection AS derniere_collecte, s.*,
           CASE WHEN c.measured_at >= now() - make_interval(days => s.dechets_jours_vitesse)
                THEN c.rate_pct_per_day END AS vitesse
    FROM waste_containers c
    JOIN analytics_devices d ON d.dev_eui = c.dev_eui
    CROSS JOIN settings s
    WHERE d.category = 'waste' AND d.active
),
forecast AS (
    SELECT r.*,
           CASE WHEN r.niveau >= r.dechets_plein_pct THEN 0.0
                WHEN r.vitesse > 0 THEN (r.dechets_plein_pct - r.niveau) / r.vitesse END AS jours
    FROM rated r
)
SELECT f.dev_eui AS dispositif,
       f.name AS conteneur,
       f.niveau AS niveau_pct,
       f.time AS mesure_le,
       f.derniere_collecte,
       f.vitesse AS vitesse_pct_par_jour,
       f.jours AS jours_avant_plein,
       f.time + make_interval(secs => f.jours * 86400) AS plein_le,
       f.prochaine_tournee,
       coalesce(f.niveau >= f.dechets_seuil_pct
                OR f.time + make_interval(secs => f.jours * 86400)
                   <= (f.prochaine_tournee::timestamp AT TIME ZONE f.fuseau), false) AS a_vider,
       CASE WHEN f.niveau >= f.dechets_seuil_pct THEN 'Seuil dépassé'
            WHEN f.time + make_interval(secs => f.jours * 86400)
                 <= (f.prochaine_tournee::timestamp AT TIME ZONE f.fuseau)
            THEN 'Plein avant la prochaine tournée'
            ELSE '' END AS motif
FROM forecast f;

-- Indoor air per room and hour, from air_hourly alone: averages over the room's sensors,
-- occupancy and time above the thresholds of its worst sensor, ICONE counts of all of
-- them. One GROUP BY over plain columns, so that a filter on `heure` reaches the index.
CREATE OR REPLACE VIEW v_air_salles_horaires AS
SELECT coalesce(d.building, '') AS batiment,
       coalesce(d.room, d.name) AS salle,
       a.bucket AS heure,
       a.bucket AT TIME ZONE max(p.fuseau) AS heure_locale,
       sum(a.co2_sum) / nullif(sum(a.co2_n), 0) AS co2_moyen_ppm,
       max(a.co2_max) AS co2_max_ppm,
       sum(a.temperature_sum) / nullif(sum(a.temperature_n), 0) AS temperature_moyenne_c,
       sum(a.humidity_sum) / nullif(sum(a.humidity_n), 0) AS humidite_moyenne_pct,
       max(a.occupied_s) AS secondes_occupees,
       max(a.above_low_s) AS secondes_au_dessus_seuil_bas,
       max(a.above_high_s) AS secondes_au_dessus_seuil_haut,
       max(a.low_ppm) AS seuil_bas_ppm,
       max(a.high_ppm) AS seuil_haut_ppm,
       sum(a.n0) AS n0, sum(a.n1) AS n1, sum(a.n2) AS n2
FROM air_hourly a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui
CROSS JOIN v_parametres p
GROUP BY 1, 2, 3;

DO $$
BEGIN
    EXECUTE format(
        'GRANT SELECT ON water_nights, waste_containers, dash_water_daily, dash_waste_latest,'
        ' v_eau_nuits, v_eau_conso_anormale, v_dechets_conteneurs, v_air_salles_horaires'
        ' TO %I', regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
