-- Water consumption (litres and m3); `estime`: part of the volume was spread over a gap.
CREATE OR REPLACE VIEW v_eau_conso_horaire AS
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
