-- Night flow per meter and night; `debit_continu` when it never fell to zero on a night
-- whose hours are all measured. N such nights in a row are a leak suspicion
-- (water.leaks()).
CREATE OR REPLACE VIEW v_eau_nuits AS
SELECT n.night AS nuit,
       n.dev_eui AS dispositif,
       coalesce(d.name, n.dev_eui) AS compteur,
       n.min_volume_l AS debit_min_l_h,
       n.hours::bigint AS heures,
       n.estimated_hours::bigint AS heures_estimees,
       (n.min_volume_l > 0 AND n.estimated_hours = 0 AND n.hours >= n.expected_hours)
           AS debit_continu
FROM water_nights n
LEFT JOIN analytics_devices d ON d.dev_eui = n.dev_eui;
