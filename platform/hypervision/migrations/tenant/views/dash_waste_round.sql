-- The planned round, stop by stop (depot first and last).
CREATE OR REPLACE VIEW dash_waste_round AS
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
