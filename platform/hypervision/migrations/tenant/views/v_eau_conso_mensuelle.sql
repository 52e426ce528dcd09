-- Water consumption per meter and local month (litres and m3).
CREATE OR REPLACE VIEW v_eau_conso_mensuelle AS
SELECT w.month AS mois,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       w.volume_l / 1000.0 AS volume_m3,
       w.estimated AS estime,
       w.days AS jours
FROM water_monthly w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;
