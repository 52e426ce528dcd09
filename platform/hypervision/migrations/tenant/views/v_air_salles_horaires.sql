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
