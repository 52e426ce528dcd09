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
