-- ICONE per room and local day, over its occupied readings (all its sensors), with the
-- durations of its worst sensor that day.
CREATE OR REPLACE VIEW v_air_icone_journalier AS
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
