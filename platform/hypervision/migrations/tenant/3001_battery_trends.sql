-- Each device's battery trend (views/dash_battery_forecast.sql): its latest daily level
-- and the least-squares slope of its daily levels over the 30 days up to its latest day
-- (with 7 days at least), kept by the refresh job for the devices whose battery readings
-- changed (hypervision.analytics.health.recompute_batteries). The forecast view read 30
-- days of daily rollups for every device at each chart: 150,000 rows and 0.2 to 0.4 s at
-- 5,000 devices (bench/dashboards.py); it reads one row per device now. Retention expires
-- it with the device's class (hypervision.retention). Applying it again changes nothing.
CREATE TABLE IF NOT EXISTS battery_trends (
    dev_eui        text PRIMARY KEY,
    last_day       date NOT NULL,
    battery_pct    double precision,
    slope_pct_day  double precision,
    days           integer NOT NULL
);

INSERT INTO battery_trends (dev_eui, last_day, battery_pct, slope_pct_day, days)
SELECT r.dev_eui, max(r.day), (array_agg(r.last ORDER BY r.day DESC))[1],
       CASE WHEN count(*) >= 7 THEN regr_slope(r.last, r.day - date '2000-01-01') END,
       count(*)
FROM rollup_daily r
JOIN (SELECT dev_eui, max(day) AS last_day FROM rollup_daily
      WHERE metric = 'battery.level' GROUP BY dev_eui) l ON l.dev_eui = r.dev_eui
WHERE r.metric = 'battery.level' AND r.day >= l.last_day - 30
GROUP BY r.dev_eui
ON CONFLICT DO NOTHING;
