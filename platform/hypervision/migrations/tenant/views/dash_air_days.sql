-- Per sensor and local day over occupied hours: the ICONE counts (n0 < 1000 ppm <= n1 <=
-- 1700 < n2), minutes occupied and above the member's two thresholds. Superset sums them
-- per room and week (the icone metric computes the index from the sums).
CREATE OR REPLACE VIEW dash_air_days AS
SELECT a.day::timestamp AS day,
       a.dev_eui,
       d.name AS device_name,
       coalesce(d.building, '') AS building,
       coalesce(d.room, d.name) AS room,
       a.n0, a.n1, a.n2,
       a.occupied_s / 60 AS occupied_min,
       a.above_low_s / 60 AS above_low_min,
       a.above_high_s / 60 AS above_high_min
FROM air_daily a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui;
