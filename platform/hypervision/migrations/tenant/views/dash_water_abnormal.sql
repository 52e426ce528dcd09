-- Each meter's days judged against its own previous days, as v_eau_conso_anormale judges
-- them (`abnormal`; days without enough history or estimated are not judged). The
-- settings are read once (a materialised one-row CTE), not from JSON at every row.
CREATE OR REPLACE VIEW dash_water_abnormal AS
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
