-- The views behind the services' daily dashboards (dashboards/*.yaml): water leaks,
-- abnormal days, events and data quality; waste containers to collect, the planned round
-- and collections; indoor air per room and week with ventilation advice; energy and
-- public lighting; gateways and battery forecasts. Each reads the tables the refresh job
-- keeps (hypervision.analytics), never the raw readings in full, so that a chart stays
-- fast on a member with tens of thousands of devices (bench/dashboards.py). Columns are
-- English; dashboards/datasets.yaml gives their French labels.

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

-- Water -----------------------------------------------------------------------------------

-- Night flow per meter on the last complete night, and suspected leaks: meters whose
-- flow never fell to zero on each night of a run ending on that night, the run at least
-- `water.leak_nights` long (water.leaks()). `since` is the first night of the run; the
-- volume lost is estimated low: the smallest flow of each night of the run, all day
-- long. Every meter measured that night has a row, so that the list shows the quiet ones
-- too; the runs are kept by the refresh job (water_nights.run_nights, run_volume_l).
CREATE VIEW dash_water_leaks AS
WITH p AS (
    SELECT coalesce((SELECT (config -> 'water' ->> 'leak_nights')::integer
                     FROM analytics_settings WHERE id = 1), 3) AS leak_nights,
           (SELECT max(night) FROM water_nights WHERE hours >= expected_hours) AS last_night
)
SELECT n.dev_eui,
       coalesce(d.name, n.dev_eui) AS device_name,
       d.address,
       n.night::timestamp AS last_night,
       n.min_volume_l AS night_flow_l_h,
       n.run_nights AS nights,
       CASE WHEN n.run_nights >= p.leak_nights
            THEN (n.night - n.run_nights + 1)::timestamp END AS since,
       CASE WHEN n.run_nights >= p.leak_nights THEN n.run_volume_l * 24 / 1000.0 END
           AS leak_volume_m3,
       CASE WHEN n.run_nights >= p.leak_nights THEN 'Fuite suspectée'
            WHEN n.run_nights > 0 THEN 'Débit de nuit continu'
            WHEN n.hours < n.expected_hours OR n.estimated_hours > 0 THEN 'Nuit incomplète'
            ELSE 'Normal' END AS status
FROM p
JOIN water_nights n ON n.night = p.last_night
LEFT JOIN analytics_devices d ON d.dev_eui = n.dev_eui;

-- Each meter's days judged against its own previous days, as v_eau_conso_anormale judges
-- them (`abnormal`; days without enough history or estimated are not judged). The
-- settings are read once (a materialised one-row CTE), not from JSON at every row.
CREATE VIEW dash_water_abnormal AS
WITH p AS MATERIALIZED (
    SELECT eau_historique_min_jours, eau_ecarts_types FROM v_parametres
)
SELECT w.day::timestamp AS day,
       w.dev_eui,
       coalesce(d.name, w.dev_eui) AS device_name,
       d.address,
       w.volume_l / 1000.0 AS consumption_m3,
       w.history_mean_l / 1000.0 AS usual_m3,
       w.volume_l / nullif(w.history_mean_l, 0) AS ratio,
       (NOT w.estimated AND coalesce(w.history_days, 0) >= p.eau_historique_min_jours
        AND w.volume_l > w.history_mean_l
            + p.eau_ecarts_types * greatest(w.history_stdev_l, 0.1 * w.history_mean_l, 1.0))
           AS abnormal
FROM water_daily w
CROSS JOIN p
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;

-- What happened to the indexes: rollovers, meter swaps, reverse flows and gaps.
CREATE VIEW dash_water_events AS
SELECT e.time,
       e.time AT TIME ZONE p.fuseau AS time_local,
       e.dev_eui,
       coalesce(d.name, e.dev_eui) AS device_name,
       d.address,
       e.kind,
       CASE e.kind WHEN 'rollover' THEN 'Tour de compteur'
                   WHEN 'replacement' THEN 'Compteur remplacé'
                   WHEN 'backflow' THEN 'Retour d''eau'
                   WHEN 'gap' THEN 'Relèves manquantes' END AS event,
       e.previous_time AT TIME ZONE p.fuseau AS previous_reading,
       round((extract(epoch FROM e.time - e.previous_time) / 3600.0)::numeric, 1)
           AS hours_between,
       e.index_before / 1000.0 AS index_before_m3,
       e.index_after / 1000.0 AS index_after_m3,
       e.volume_l / 1000.0 AS volume_m3
FROM water_events e
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = e.dev_eui;

-- Data quality and index events per active meter: when it was last heard, for how many
-- whole days it has not been, its gaps between readings, reverse flows, swaps and
-- rollovers over the last 30 days.
CREATE VIEW dash_water_quality AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.address,
       s.last_seen AT TIME ZONE p.fuseau AS last_reading,
       floor(extract(epoch FROM now() - s.last_seen) / 86400)::integer AS days_without_reading,
       coalesce(g.gaps, 0) AS gaps_30d,
       coalesce(g.hours, 0) AS gap_hours_30d,
       coalesce(g.backflows, 0) AS backflows_30d,
       coalesce(g.backflow_m3, 0) AS backflow_m3_30d,
       coalesce(g.replacements, 0) AS replacements_30d,
       coalesce(g.rollovers, 0) AS rollovers_30d,
       CASE WHEN s.last_seen IS NULL THEN 'Jamais relevé'
            WHEN s.last_seen < now() - interval '7 days' THEN 'Non relevé depuis 7 jours ou plus'
            WHEN s.last_seen < now() - interval '1 day' THEN 'Non relevé depuis plus d''un jour'
            WHEN g.gaps > 0 THEN 'Relèves manquantes'
            ELSE 'Normal' END AS quality
FROM analytics_devices d
CROSS JOIN v_parametres p
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
LEFT JOIN (
    SELECT dev_eui,
           count(*) FILTER (WHERE kind = 'gap') AS gaps,
           round((sum(extract(epoch FROM time - previous_time)) FILTER (WHERE kind = 'gap')
                  / 3600.0)::numeric, 1) AS hours,
           count(*) FILTER (WHERE kind = 'backflow') AS backflows,
           -sum(volume_l) FILTER (WHERE kind = 'backflow') / 1000.0 AS backflow_m3,
           count(*) FILTER (WHERE kind = 'replacement') AS replacements,
           count(*) FILTER (WHERE kind = 'rollover') AS rollovers
    FROM water_events
    WHERE time >= now() - interval '30 days'
    GROUP BY dev_eui
) g ON g.dev_eui = d.dev_eui
WHERE d.category = 'water' AND d.active;

-- Waste -----------------------------------------------------------------------------------

-- Every container with its forecast and whether to collect it at the day's round
-- (v_dechets_conteneurs).
CREATE VIEW dash_waste_plan AS
SELECT c.dispositif AS dev_eui,
       c.conteneur AS device_name,
       d.address,
       c.niveau_pct AS fill_pct,
       c.vitesse_pct_par_jour AS fill_rate_pct_day,
       round(c.jours_avant_plein::numeric, 1) AS days_to_full,
       c.plein_le AT TIME ZONE p.fuseau AS full_at,
       c.derniere_collecte AT TIME ZONE p.fuseau AS last_collection,
       c.mesure_le AT TIME ZONE p.fuseau AS measured_at,
       c.a_vider AS to_collect,
       CASE WHEN c.a_vider THEN 'À collecter' ELSE 'Pas encore' END AS decision,
       c.motif AS reason
FROM v_dechets_conteneurs c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dispositif;

-- The planned round, stop by stop (depot first and last).
CREATE VIEW dash_waste_round AS
SELECT s.position,
       CASE WHEN s.dev_eui IS NULL THEN 'Dépôt' ELSE coalesce(d.name, s.dev_eui) END
           AS stop_name,
       CASE WHEN s.dev_eui IS NULL THEN 'Dépôt'
            ELSE s.position || '. ' || coalesce(d.name, s.dev_eui) END AS stop_label,
       s.dev_eui,
       d.address,
       c.level_pct AS fill_pct,
       s.lat,
       s.lon,
       round((s.leg_m / 1000.0)::numeric, 2) AS leg_km,
       round((s.cumulative_m / 1000.0)::numeric, 2) AS cumulative_km,
       r.planned_at AT TIME ZONE p.fuseau AS planned_at,
       CASE r.distances WHEN 'road' THEN 'Distances routières'
                        ELSE 'Distances à vol d''oiseau' END AS distances
FROM waste_round_stops s
CROSS JOIN waste_round r
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = s.dev_eui
LEFT JOIN waste_containers c ON c.dev_eui = s.dev_eui;

-- Collections detected (falls of the level).
CREATE VIEW dash_waste_collections AS
SELECT c.time,
       c.time AT TIME ZONE p.fuseau AS time_local,
       c.dev_eui,
       coalesce(d.name, c.dev_eui) AS device_name,
       d.address,
       c.level_before AS level_before_pct,
       c.level_after AS level_after_pct
FROM waste_collections c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dev_eui;

-- Indoor air ------------------------------------------------------------------------------

-- Per sensor and local day over occupied hours: the ICONE counts (n0 < 1000 ppm <= n1 <=
-- 1700 < n2), minutes occupied and above the member's two thresholds. Superset sums them
-- per room and week (the icone metric computes the index from the sums).
CREATE VIEW dash_air_days AS
SELECT a.day::timestamp AS day,
       a.dev_eui,
       d.name AS device_name,
       coalesce(d.building, '') AS building,
       coalesce(d.room, d.name) AS room,
       a.n0, a.n1, a.n2,
       a.occupied_s / 60 AS occupied_min,
       a.above_low_s / 60 AS above_low_min,
       a.above_high_s / 60 AS above_high_min
FROM air_daily a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui;

-- Per room over the last 7 local days: ICONE, share of occupied readings above 1000 ppm,
-- minutes above the high threshold, and what to do about it.
CREATE VIEW dash_air_advice AS
WITH rooms AS (
    SELECT coalesce(d.building, '') AS building,
           coalesce(d.room, d.name) AS room,
           icone_index(sum(a.n1)::bigint, sum(a.n2)::bigint, sum(a.n0 + a.n1 + a.n2)::bigint)
               AS icone,
           100.0 * sum(a.n1 + a.n2) / nullif(sum(a.n0 + a.n1 + a.n2), 0) AS above_1000_pct,
           max(a.above_high_s) / 60 AS above_high_min_max_day,
           sum(a.above_high_s) / 60 AS above_high_min,
           sum(a.occupied_s) / 3600 AS occupied_h,
           max(p.co2_seuil_haut_ppm) AS high_ppm
    FROM air_daily a
    JOIN analytics_devices d ON d.dev_eui = a.dev_eui
    CROSS JOIN v_parametres p
    WHERE a.day > (now() AT TIME ZONE p.fuseau)::date - 7
    GROUP BY 1, 2
)
SELECT r.building, r.room, r.icone,
       CASE r.icone WHEN 0 THEN 'Nul' WHEN 1 THEN 'Faible' WHEN 2 THEN 'Moyen'
                    WHEN 3 THEN 'Élevé' WHEN 4 THEN 'Très élevé' WHEN 5 THEN 'Extrême' END
           AS icone_label,
       round(r.above_1000_pct::numeric, 1) AS above_1000_pct,
       r.above_high_min,
       r.occupied_h,
       CASE WHEN r.icone IS NULL THEN 'Pas de mesure en période d''occupation'
            WHEN r.icone >= 4 THEN 'Aérer en grand à chaque pause et faire vérifier la ventilation'
            WHEN r.icone = 3 THEN 'Ouvrir les fenêtres 5 à 10 minutes toutes les heures'
            WHEN r.icone = 2 OR r.above_high_min_max_day >= 30
                THEN 'Aérer à chaque pause (récréation, midi)'
            WHEN r.above_high_min > 0 THEN 'Aérer lors des cours les plus chargés'
            ELSE 'Aération suffisante' END AS advice
FROM rooms r;

-- Energy and public lighting --------------------------------------------------------------

-- Energy per meter or lighting cabinet and local day, from its cumulative counter
-- (energy.active, Wh): the day's rise plus the step since the previous day's last
-- reading; a counter that went back (reset) counts nothing.
CREATE VIEW dash_energy_daily AS
SELECT r.day::timestamp AS day,
       r.dev_eui,
       coalesce(d.name, r.dev_eui) AS device_name,
       coalesce(d.building, d.address, 'Sans bâtiment') AS building,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       greatest(r.last - coalesce(prev.last, r.first), 0) / 1000.0 AS energy_kwh
FROM rollup_daily r
LEFT JOIN rollup_daily prev
       ON prev.dev_eui = r.dev_eui AND prev.metric = r.metric AND prev.day = r.day - 1
LEFT JOIN analytics_devices d ON d.dev_eui = r.dev_eui
WHERE r.metric = 'energy.active';

-- Lighting circuits per hour: share of the hour switched on (lamp.on), average power, and
-- whether the sun was up (more than 5 degrees at mid-hour, at the cabinet's coordinates,
-- else at the centre of mainland France): a lamp lit then is lit in daylight.
CREATE VIEW dash_lighting_hours AS
WITH p AS MATERIALIZED (SELECT fuseau FROM v_parametres)
SELECT h.bucket AS time,
       h.bucket AT TIME ZONE p.fuseau AS time_local,
       h.dev_eui,
       coalesce(d.name, h.dev_eui) AS device_name,
       coalesce(d.building, d.address, 'Sans bâtiment') AS building,
       h.sum / h.n AS burning_hours,
       (sun_elevation(h.bucket + interval '30 minutes', coalesce(d.lat, 46.6),
                      coalesce(d.lon, 2.4)) > 5) AS daylight,
       CASE WHEN h.sum > 0 AND sun_elevation(h.bucket + interval '30 minutes',
                                             coalesce(d.lat, 46.6), coalesce(d.lon, 2.4)) > 5
            THEN h.sum / h.n ELSE 0 END AS daylight_hours
FROM rollup_hourly h
CROSS JOIN p
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui
WHERE h.metric = 'lamp.on';

-- Network health --------------------------------------------------------------------------

-- Gateways that heard the member's devices over the last 7 days, offline when they have
-- heard nothing for `health.gateway_silent_minutes` (v_sante_passerelles).
CREATE VIEW dash_gateways AS
SELECT g.passerelle AS gateway_id,
       g.entendue_jusqu_a AT TIME ZONE p.fuseau AS heard_until,
       coalesce(g.trames_24h, 0) AS uplinks_24h,
       round((extract(epoch FROM now() - g.entendue_jusqu_a) / 3600.0)::numeric, 1)
           AS hours_silent,
       CASE WHEN g.muette THEN 'Hors ligne' ELSE 'En ligne' END AS status
FROM v_sante_passerelles g
CROSS JOIN v_parametres p;

-- Battery forecast per active device: the trend of its daily battery level over the last
-- 30 days (least squares), and when it reaches the member's low-battery threshold.
CREATE VIEW dash_battery_forecast AS
WITH b AS (
    SELECT r.dev_eui,
           (array_agg(r.last ORDER BY r.day DESC))[1] AS battery_pct,
           CASE WHEN count(*) >= 7 THEN regr_slope(r.last, r.day - date '2000-01-01') END
               AS slope_pct_day
    FROM rollup_daily r
    WHERE r.metric = 'battery.level' AND r.day >= current_date - 30
    GROUP BY r.dev_eui
)
SELECT d.dev_eui,
       d.name AS device_name,
       hv_shared.category_label(d.category) AS category_label,
       b.battery_pct,
       round(b.slope_pct_day::numeric, 3) AS slope_pct_day,
       CASE WHEN b.battery_pct <= p.batterie_faible_pct THEN 0
            WHEN b.slope_pct_day < 0
            THEN round(((b.battery_pct - p.batterie_faible_pct) / -b.slope_pct_day)::numeric)
       END AS days_to_low,
       CASE WHEN b.battery_pct <= p.batterie_faible_pct THEN 'Batterie faible'
            WHEN b.slope_pct_day < 0
                 AND (b.battery_pct - p.batterie_faible_pct) / -b.slope_pct_day <= 90
            THEN 'À remplacer sous 3 mois'
            ELSE 'Normal' END AS forecast
FROM b
JOIN analytics_devices d ON d.dev_eui = b.dev_eui
CROSS JOIN v_parametres p
WHERE d.active;

DO $$
BEGIN
    EXECUTE format(
        'GRANT SELECT ON waste_round, waste_round_stops, dash_water_leaks,'
        ' dash_water_abnormal, dash_water_events, dash_water_quality, dash_waste_plan,'
        ' dash_waste_round, dash_waste_collections, dash_air_days, dash_air_advice,'
        ' dash_energy_daily, dash_lighting_hours, dash_gateways, dash_battery_forecast'
        ' TO %I', regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
