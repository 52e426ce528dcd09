-- Night flow per meter on the last complete night, and suspected leaks: meters whose
-- flow never fell to zero on each night of a run ending on that night, the run at least
-- `water.leak_nights` long (water.leaks()). `since` is the first night of the run; the
-- volume lost is estimated low: the smallest flow of each night of the run, all day
-- long. Every meter measured that night has a row, so that the list shows the quiet ones
-- too; the runs are kept by the refresh job (water_nights.run_nights, run_volume_l).
CREATE OR REPLACE VIEW dash_water_leaks AS
WITH p AS (
    SELECT coalesce((SELECT (config -> 'water' ->> 'leak_nights')::integer
                     FROM analytics_settings WHERE id = 1), 3) AS leak_nights,
           (SELECT max(night) FROM water_nights WHERE hours >= expected_hours) AS last_night
)
SELECT n.dev_eui,
       coalesce(d.name, n.dev_eui) AS device_name,
       d.address,
       n.night::timestamp AS last_night,
       n.min_volume_l AS night_flow_l_h,
       n.run_nights AS nights,
       CASE WHEN n.run_nights >= p.leak_nights
            THEN (n.night - n.run_nights + 1)::timestamp END AS since,
       CASE WHEN n.run_nights >= p.leak_nights THEN n.run_volume_l * 24 / 1000.0 END
           AS leak_volume_m3,
       CASE WHEN n.run_nights >= p.leak_nights THEN 'Fuite suspectée'
            WHEN n.run_nights > 0 THEN 'Débit de nuit continu'
            WHEN n.hours < n.expected_hours OR n.estimated_hours > 0 THEN 'Nuit incomplète'
            ELSE 'Normal' END AS status
FROM p
JOIN water_nights n ON n.night = p.last_night
LEFT JOIN analytics_devices d ON d.dev_eui = n.dev_eui;
