-- Per device, metric and UTC hour, from the hourly rollups the refresh job keeps: how
-- many readings, their sum, minimum and maximum. What the charts of a metric over days
-- and weeks read (an average is SUM(total) / SUM(readings)), one row per device and hour
-- instead of every reading (dash_measurements keeps those, for a day or one device).
CREATE OR REPLACE VIEW dash_hourly AS
SELECT r.bucket AS time,
       (r.bucket AT TIME ZONE 'Europe/Paris') AS time_local,
       r.dev_eui,
       coalesce(d.name, r.dev_eui) AS device_name,
       d.category,
       d.building,
       d.room,
       r.metric,
       r.n AS readings,
       r.sum AS total,
       r.min AS minimum,
       r.max AS maximum
FROM rollup_hourly r
LEFT JOIN dash_devices d ON d.dev_eui = r.dev_eui;
