-- Per room over the last 7 local days: ICONE, share of occupied readings above 1000 ppm,
-- minutes above the high threshold, and what to do about it.
CREATE OR REPLACE VIEW dash_air_advice AS
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
