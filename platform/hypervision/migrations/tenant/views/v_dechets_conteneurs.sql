-- Waste: each container's state (waste_containers), its forecast and whether to empty it
-- at the next round (waste.containers()). The fill rate is that of the latest reading,
-- shown while that reading is less than `waste.rate_days` old; days until full count
-- from the latest reading; the next round is the first round day after today.
-- "Days until full" only from a fill rate of at least 0.1 point a day (the rate the
-- dashboards show as 0,1): a container whose level stays flat, a full one whose sensor
-- reads 98 % for days for instance, would otherwise be "full in 1,500 days" beside its
-- 98 % (waste.MIN_RATE_PCT_PER_DAY); the collection threshold still applies.
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
                WHEN r.vitesse >= 0.1 THEN (r.dechets_plein_pct - r.niveau) / r.vitesse
           END AS jours
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
