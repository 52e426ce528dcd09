-- Views of the analytics for Superset and SQL users, with French column names
-- (hypervision.analytics; see platform/hypervision/analytics/README.md). They read the
-- tables the refresh job keeps up to date, never the raw hypertables in full, so that a
-- dashboard over a year stays fast. `heure`/`jour` are UTC instants or the member's local
-- dates; `heure_locale` is the member's local time without zone, which Superset shows as is.
-- The member's settings (time zone, thresholds, night window) come from analytics_settings.

-- The member's settings, as columns.
CREATE VIEW v_parametres AS
SELECT coalesce(config ->> 'timezone', 'Europe/Paris') AS fuseau,
       coalesce((config -> 'water' ->> 'night_start')::time, '01:00') AS nuit_debut,
       coalesce((config -> 'water' ->> 'night_end')::time, '05:00') AS nuit_fin,
       coalesce((config -> 'water' ->> 'abnormal_history_days')::integer, 28) AS eau_historique_jours,
       coalesce((config -> 'water' ->> 'abnormal_min_days')::integer, 14) AS eau_historique_min_jours,
       coalesce((config -> 'water' ->> 'abnormal_sigmas')::float8, 3.0) AS eau_ecarts_types,
       coalesce((config -> 'waste' ->> 'empty_above_pct')::float8, 80.0) AS dechets_seuil_pct,
       coalesce((config -> 'waste' ->> 'full_pct')::float8, 100.0) AS dechets_plein_pct,
       coalesce((config -> 'waste' ->> 'rate_days')::integer, 7) AS dechets_jours_vitesse,
       coalesce(ARRAY(SELECT jsonb_array_elements_text(config -> 'waste' -> 'round_days')),
                ARRAY['mon', 'tue', 'wed', 'thu', 'fri']) AS dechets_jours_tournee,
       coalesce((config -> 'air' ->> 'low_ppm')::float8, 800.0) AS co2_seuil_bas_ppm,
       coalesce((config -> 'air' ->> 'high_ppm')::float8, 1500.0) AS co2_seuil_haut_ppm,
       coalesce((config -> 'health' ->> 'battery_low_pct')::float8, 20.0) AS batterie_faible_pct,
       coalesce((config -> 'health' ->> 'silent_factor')::float8, 3.0) AS silence_facteur,
       coalesce((config -> 'health' ->> 'gateway_silent_minutes')::integer, 60)
           AS passerelle_silence_minutes
FROM (SELECT (SELECT config FROM analytics_settings WHERE id = 1) AS config) s;

-- Rollups per device and metric.
CREATE VIEW v_mesures_horaires AS
SELECT h.bucket AS heure,
       h.bucket AT TIME ZONE p.fuseau AS heure_locale,
       h.dev_eui AS dispositif,
       coalesce(d.name, h.dev_eui) AS nom,
       d.category AS categorie,
       d.building AS batiment,
       d.room AS salle,
       h.metric AS metrique,
       h.n AS nb_mesures,
       h.min AS minimum,
       h.max AS maximum,
       h.sum / h.n AS moyenne,
       h.first AS premiere_valeur,
       h.last AS derniere_valeur
FROM rollup_hourly h
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui;

CREATE VIEW v_mesures_journalieres AS
SELECT h.day AS jour,
       h.dev_eui AS dispositif,
       coalesce(d.name, h.dev_eui) AS nom,
       d.category AS categorie,
       d.building AS batiment,
       d.room AS salle,
       h.metric AS metrique,
       h.n AS nb_mesures,
       h.min AS minimum,
       h.max AS maximum,
       h.sum / h.n AS moyenne,
       h.first AS premiere_valeur,
       h.last AS derniere_valeur
FROM rollup_daily h
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui;

-- Water consumption (litres and m3); `estime`: part of the volume was spread over a gap.
CREATE VIEW v_eau_conso_horaire AS
SELECT w.bucket AS heure,
       w.bucket AT TIME ZONE p.fuseau AS heure_locale,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       w.volume_l / 1000.0 AS volume_m3,
       w.estimated AS estime
FROM water_hourly w
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;

CREATE VIEW v_eau_conso_journaliere AS
SELECT w.day AS jour,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       w.volume_l / 1000.0 AS volume_m3,
       w.estimated AS estime,
       w.hours AS heures
FROM water_daily w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;

CREATE VIEW v_eau_conso_mensuelle AS
SELECT w.month AS mois,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       w.volume_l / 1000.0 AS volume_m3,
       w.estimated AS estime,
       w.days AS jours
FROM water_monthly w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;

CREATE VIEW v_eau_evenements AS
SELECT e.time AS date_heure,
       e.time AT TIME ZONE p.fuseau AS date_heure_locale,
       e.dev_eui AS dispositif,
       coalesce(d.name, e.dev_eui) AS compteur,
       e.kind AS type,
       CASE e.kind WHEN 'rollover' THEN 'Tour de compteur'
                   WHEN 'replacement' THEN 'Remplacement du compteur'
                   WHEN 'backflow' THEN 'Retour d''eau'
                   WHEN 'gap' THEN 'Relevés manquants' END AS evenement,
       e.previous_time AS releve_precedent,
       e.index_before AS index_avant_l,
       e.index_after AS index_apres_l,
       e.volume_l
FROM water_events e
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = e.dev_eui;

-- Night flow per meter and night (the date the night ends on): the smallest hourly
-- volume over the night window; `debit_continu` when it never fell to zero on a night
-- fully measured. N such nights in a row are a leak suspicion (water.leaks()). On the
-- night the clocks change the view still expects the usual number of hours (the
-- functions count the real ones).
CREATE VIEW v_eau_nuits AS
WITH hours AS (
    SELECT w.dev_eui, w.volume_l, w.estimated,
           (w.bucket AT TIME ZONE p.fuseau) AS local,
           p.nuit_debut, p.nuit_fin
    FROM water_hourly w CROSS JOIN v_parametres p
    WHERE CASE WHEN p.nuit_debut < p.nuit_fin
               THEN (w.bucket AT TIME ZONE p.fuseau)::time >= p.nuit_debut
                    AND (w.bucket AT TIME ZONE p.fuseau)::time < p.nuit_fin
               ELSE (w.bucket AT TIME ZONE p.fuseau)::time >= p.nuit_debut
                    OR (w.bucket AT TIME ZONE p.fuseau)::time < p.nuit_fin END
)
SELECT CASE WHEN h.nuit_debut >= h.nuit_fin AND h.local::time >= h.nuit_debut
            THEN h.local::date + 1 ELSE h.local::date END AS nuit,
       h.dev_eui AS dispositif,
       coalesce(d.name, h.dev_eui) AS compteur,
       min(h.volume_l) AS debit_min_l_h,
       count(*) AS heures,
       count(*) FILTER (WHERE h.estimated) AS heures_estimees,
       (min(h.volume_l) > 0 AND count(*) FILTER (WHERE h.estimated) = 0
        AND count(*) >= extract(epoch FROM (CASE WHEN h.nuit_debut < h.nuit_fin
                THEN h.nuit_fin - h.nuit_debut
                ELSE h.nuit_fin - h.nuit_debut + interval '24 hours' END)) / 3600
       ) AS debit_continu
FROM hours h
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui
GROUP BY 1, 2, 3, h.nuit_debut, h.nuit_fin;

-- A day's consumption against the meter's own previous days (water.abnormal_days()).
CREATE VIEW v_eau_conso_anormale AS
SELECT w.day AS jour,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       s.jours AS jours_historique,
       s.moyenne AS moyenne_l,
       s.ecart_type AS ecart_type_l,
       (NOT w.estimated AND s.jours >= p.eau_historique_min_jours
        AND w.volume_l > s.moyenne
            + p.eau_ecarts_types * greatest(s.ecart_type, 0.1 * s.moyenne, 1.0)) AS anormal
FROM water_daily w
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui
CROSS JOIN LATERAL (
    SELECT count(*) AS jours, avg(x.volume_l) AS moyenne, stddev_pop(x.volume_l) AS ecart_type
    FROM water_daily x
    WHERE x.dev_eui = w.dev_eui AND NOT x.estimated
      AND x.day >= w.day - p.eau_historique_jours AND x.day < w.day
) s;

-- Waste: latest level of each container, fill rate since its last collection, forecast,
-- and whether to empty it at the next round (waste.containers(), which also computes the
-- level of a container reporting only its distance; this view reads fill.level).
CREATE VIEW v_dechets_conteneurs AS
WITH latest AS (
    SELECT d.dev_eui, d.name, l.time, l.value AS niveau,
           (SELECT max(c.time) FROM waste_collections c WHERE c.dev_eui = d.dev_eui)
               AS derniere_collecte
    FROM analytics_devices d
    CROSS JOIN LATERAL (
        SELECT m.time, m.value FROM measurements m
        WHERE m.dev_eui = d.dev_eui AND m.metric = 'fill.level'
        ORDER BY m.time DESC LIMIT 1
    ) l
    WHERE d.category = 'waste' AND d.active
),
rated AS (
    SELECT l.*, p.dechets_seuil_pct, p.dechets_plein_pct, p.fuseau,
           (SELECT CASE WHEN count(*) >= 2 AND max(m.time) - min(m.time) >= interval '1 hour'
                        THEN regr_slope(m.value, extract(epoch FROM m.time) / 86400) END
            FROM measurements m
            WHERE m.dev_eui = l.dev_eui AND m.metric = 'fill.level'
              AND m.time >= greatest(now() - make_interval(days => p.dechets_jours_vitesse),
                                     coalesce(l.derniere_collecte, '-infinity'))
              AND m.time <= now()) AS vitesse,
           (SELECT min(x.day) FROM generate_series(1, 7) i
                CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE p.fuseau)::date + i AS day) x
            WHERE (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])[extract(isodow FROM x.day)]
                  = ANY(p.dechets_jours_tournee)) AS prochaine_tournee
    FROM latest l CROSS JOIN v_parametres p
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

CREATE VIEW v_dechets_collectes AS
SELECT c.time AS date_heure,
       c.time AT TIME ZONE p.fuseau AS date_heure_locale,
       c.dev_eui AS dispositif,
       coalesce(d.name, c.dev_eui) AS conteneur,
       c.level_before AS niveau_avant_pct,
       c.level_after AS niveau_apres_pct
FROM waste_collections c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dev_eui;

-- Indoor air per room and hour: averages from the rollups, occupancy and time above the
-- thresholds from air_hourly (worst sensor of the room), ICONE counts (all its sensors).
-- One GROUP BY over plain columns, so that a filter on `heure` reaches the indexes.
CREATE VIEW v_air_salles_horaires AS
SELECT coalesce(d.building, '') AS batiment,
       coalesce(d.room, d.name) AS salle,
       a.bucket AS heure,
       a.bucket AT TIME ZONE max(p.fuseau) AS heure_locale,
       sum(c.sum) / nullif(sum(c.n), 0) AS co2_moyen_ppm,
       max(c.max) AS co2_max_ppm,
       sum(t.sum) / nullif(sum(t.n), 0) AS temperature_moyenne_c,
       sum(h.sum) / nullif(sum(h.n), 0) AS humidite_moyenne_pct,
       max(a.occupied_s) AS secondes_occupees,
       max(a.above_low_s) AS secondes_au_dessus_seuil_bas,
       max(a.above_high_s) AS secondes_au_dessus_seuil_haut,
       max(a.low_ppm) AS seuil_bas_ppm,
       max(a.high_ppm) AS seuil_haut_ppm,
       sum(a.n0) AS n0, sum(a.n1) AS n1, sum(a.n2) AS n2
FROM air_hourly a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui
CROSS JOIN v_parametres p
LEFT JOIN rollup_hourly c
       ON c.dev_eui = a.dev_eui AND c.bucket = a.bucket AND c.metric = 'air.co2'
LEFT JOIN rollup_hourly t
       ON t.dev_eui = a.dev_eui AND t.bucket = a.bucket AND t.metric = 'air.temperature'
LEFT JOIN rollup_hourly h
       ON h.dev_eui = a.dev_eui AND h.bucket = a.bucket AND h.metric = 'air.humidity'
GROUP BY 1, 2, 3;

-- ICONE per room and local day, over its occupied readings (all its sensors), with the
-- durations of its worst sensor that day.
CREATE VIEW v_air_icone_journalier AS
SELECT coalesce(d.building, '') AS batiment,
       coalesce(d.room, d.name) AS salle,
       a.day AS jour,
       sum(a.n0) AS n0, sum(a.n1) AS n1, sum(a.n2) AS n2,
       icone_index(sum(a.n1)::bigint, sum(a.n2)::bigint, sum(a.n0 + a.n1 + a.n2)::bigint)
           AS icone,
       max(a.occupied_s) / 60 AS minutes_occupees,
       max(a.above_low_s) / 60 AS minutes_au_dessus_seuil_bas,
       max(a.above_high_s) / 60 AS minutes_au_dessus_seuil_haut
FROM air_daily a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui
GROUP BY 1, 2, 3;

-- Device health now: last heard, silence against the model's usual interval, battery.
-- Loss rates and radio trends over a window are in health.devices() (API).
CREATE VIEW v_sante_dispositifs AS
SELECT d.dev_eui AS dispositif,
       d.name AS nom,
       d.model_id AS modele,
       d.category AS categorie,
       s.last_seen AS derniere_reception,
       s.last_seen AT TIME ZONE p.fuseau AS derniere_reception_locale,
       d.typical_interval_s AS intervalle_habituel_s,
       (s.last_seen IS NULL OR extract(epoch FROM now() - s.last_seen)
            > p.silence_facteur * d.typical_interval_s) AS silencieux,
       coalesce(b.value, s.battery_level) AS batterie_pct,
       coalesce(coalesce(b.value, s.battery_level) < p.batterie_faible_pct, false)
           AS batterie_faible,
       s.last_rssi AS rssi_dbm,
       s.last_snr AS snr_db,
       s.last_f_cnt AS dernier_compteur_trames
FROM analytics_devices d
CROSS JOIN v_parametres p
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
LEFT JOIN LATERAL (
    SELECT h.last AS value FROM rollup_hourly h
    WHERE h.dev_eui = d.dev_eui AND h.metric = 'battery.level'
    ORDER BY h.bucket DESC LIMIT 1
) b ON true
WHERE d.active;

-- Uplinks heard per gateway and hour, and each gateway's state.
CREATE VIEW v_sante_passerelles_horaires AS
SELECT g.bucket AS heure,
       g.bucket AT TIME ZONE p.fuseau AS heure_locale,
       g.gateway_id AS passerelle,
       g.uplinks AS trames,
       g.devices AS dispositifs
FROM gateway_hourly g CROSS JOIN v_parametres p;

CREATE VIEW v_sante_passerelles AS
SELECT g.gateway_id AS passerelle,
       max(g.bucket) + interval '1 hour' AS entendue_jusqu_a,
       sum(g.uplinks) FILTER (WHERE g.bucket >= now() - interval '24 hours') AS trames_24h,
       (max(g.bucket) + interval '1 hour'
            < now() - make_interval(mins => max(p.passerelle_silence_minutes))) AS muette
FROM gateway_hourly g CROSS JOIN v_parametres p
WHERE g.bucket >= now() - interval '7 days'
GROUP BY g.gateway_id;

-- Alerts, with French labels.
CREATE VIEW v_alertes AS
SELECT a.id,
       a.rule AS regle,
       a.dev_eui AS dispositif,
       coalesce(d.name, a.dev_eui) AS nom,
       CASE a.severity WHEN 'info' THEN 'Information' WHEN 'warning' THEN 'Avertissement'
                       ELSE 'Critique' END AS gravite,
       CASE a.state WHEN 'open' THEN 'Ouverte' WHEN 'acknowledged' THEN 'Prise en compte'
                    ELSE 'Fermée' END AS etat,
       a.message,
       a.since AS depuis,
       a.opened_at AS ouverte_le,
       a.acknowledged_at AS prise_en_compte_le,
       a.acknowledged_by AS prise_en_compte_par,
       a.closed_at AS fermee_le,
       a.closed_by AS fermee_par,
       a.close_reason AS motif_fermeture
FROM alerts a
LEFT JOIN analytics_devices d ON d.dev_eui = a.dev_eui;

DO $$
BEGIN
    EXECUTE format(
        'GRANT SELECT ON v_parametres, v_mesures_horaires, v_mesures_journalieres,'
        ' v_eau_conso_horaire, v_eau_conso_journaliere, v_eau_conso_mensuelle,'
        ' v_eau_evenements, v_eau_nuits, v_eau_conso_anormale, v_dechets_conteneurs,'
        ' v_dechets_collectes, v_air_salles_horaires, v_air_icone_journalier,'
        ' v_sante_dispositifs, v_sante_passerelles_horaires, v_sante_passerelles, v_alertes'
        ' TO %I', regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
