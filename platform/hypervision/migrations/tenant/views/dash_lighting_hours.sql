-- Lighting circuits per hour: share of the hour switched on (lamp.on), average power, and
-- whether the sun was up (more than 5 degrees at mid-hour, at the cabinet's coordinates,
-- else at the centre of mainland France): a lamp lit then is lit in daylight. The sun's
-- declination and equation of time of the day come from hv_shared.sun_days (2000 to
-- 2100; sun_elevation() outside it): the sine of the elevation is then
-- sin(lat) sin(decl) + cos(lat) cos(decl) cos(hour angle), above sin(5°) in daylight.
CREATE OR REPLACE VIEW dash_lighting_hours AS
WITH p AS MATERIALIZED (SELECT fuseau FROM v_parametres)
SELECT h.bucket AS time,
       h.bucket AT TIME ZONE p.fuseau AS time_local,
       h.dev_eui,
       coalesce(d.name, h.dev_eui) AS device_name,
       coalesce(d.building, d.address, 'Sans bâtiment') AS building,
       h.sum / h.n AS burning_hours,
       sun.up AS daylight,
       CASE WHEN h.sum > 0 AND sun.up THEN h.sum / h.n ELSE 0 END AS daylight_hours
FROM rollup_hourly h
CROSS JOIN p
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui
LEFT JOIN hv_shared.sun_days s ON s.day = (h.bucket AT TIME ZONE 'UTC')::date
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.day IS NULL
                THEN sun_elevation(h.bucket + interval '30 minutes', coalesce(d.lat, 46.6),
                                   coalesce(d.lon, 2.4)) > 5
                ELSE sin(radians(coalesce(d.lat, 46.6))) * s.sin_decl
                     + cos(radians(coalesce(d.lat, 46.6))) * s.cos_decl
                       * cos(radians((mod(date_part('epoch', h.bucket)::bigint / 60, 1440) + 30
                                      + s.eqtime_min + 4 * coalesce(d.lon, 2.4)) / 4 - 180))
                     > 0.0871557427476582  -- sin(5°)
           END AS up) sun
WHERE h.metric = 'lamp.on';
