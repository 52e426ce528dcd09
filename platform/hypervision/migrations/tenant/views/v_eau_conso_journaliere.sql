-- Water consumption per meter and local day (litres and m3); `estime`: part of the
-- volume was spread over a gap.
CREATE OR REPLACE VIEW v_eau_conso_journaliere AS
SELECT w.day AS jour,
       w.dev_eui AS dispositif,
       coalesce(d.name, w.dev_eui) AS compteur,
       w.volume_l,
       w.volume_l / 1000.0 AS volume_m3,
       w.estimated AS estime,
       w.hours AS heures
FROM water_daily w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;
