-- Lighting circuits per hour: share of the hour switched on (lamp.on), average power, and
-- whether the sun was up (more than 5 degrees at mid-hour, at the cabinet's coordinates,
-- else at the centre of mainland France): a lamp lit then is lit in daylight.
CREATE OR REPLACE VIEW dash_lighting_hours AS
WITH p AS MATERIALIZED (SELECT fuseau FROM v_parametres)
SELECT h.bucket AS time,
       h.bucket AT TIME ZONE p.fuseau AS time_local,
       h.dev_eui,
       coalesce(d.name, h.dev_eui) AS device_name,
       coalesce(d.building, d.address, 'Sans bâtiment') AS building,
       h.sum / h.n AS burning_hours,
       (sun_elevation(h.bucket + interval '30 minutes', coalesce(d.lat, 46.6),
                      coalesce(d.lon, 2.4)) > 5) AS daylight,
       CASE WHEN h.sum > 0 AND sun_elevation(h.bucket + interval '30 minutes',
                                             coalesce(d.lat, 46.6), coalesce(d.lon, 2.4)) > 5
            THEN h.sum / h.n ELSE 0 END AS daylight_hours
FROM rollup_hourly h
CROSS JOIN p
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui
WHERE h.metric = 'lamp.on';
