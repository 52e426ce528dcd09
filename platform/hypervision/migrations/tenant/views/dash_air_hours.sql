-- Per CO2 sensor and UTC hour, from air_hourly (the refresh job's): the hour's CO2,
-- temperature and humidity as counts and sums, the CO2 maximum, and the readings taken
-- while the building was occupied, all of them and those from 1000 ppm up. What the air
-- charts over days and weeks read: an average is SUM(sum) / SUM(count), a share of
-- readings SUM(over) / SUM(occupied), a few rows per sensor and hour instead of every
-- reading (dash_measurements keeps those, for a day or one sensor).
CREATE OR REPLACE VIEW dash_air_hours AS
SELECT a.bucket AS time,
       (a.bucket AT TIME ZONE 'Europe/Paris') AS time_local,
       a.dev_eui,
       d.name AS device_name,
       coalesce(d.building, '') AS building,
       coalesce(d.room, d.name) AS room,
       a.co2_n,
       a.co2_sum,
       a.co2_max,
       a.temperature_n,
       a.temperature_sum,
       a.humidity_n,
       a.humidity_sum,
       a.n0 + a.n1 + a.n2 AS occupied_readings,
       a.n1 + a.n2 AS over_1000_readings
FROM air_hourly a
JOIN analytics_devices d ON d.dev_eui = a.dev_eui;
