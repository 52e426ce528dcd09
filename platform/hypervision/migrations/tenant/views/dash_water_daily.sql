-- Water: consumption per meter and local day, from water_daily (rollovers, meter swaps
-- and backflow accounted for, volumes spread over gaps; days of the member's time zone).
-- `index_m3` is the highest index of the day; a day inside a gap has a volume and no
-- reading. Every meter of water_daily is in analytics_devices (the refresh computes known
-- devices only, and a device that leaves stays there, inactive), so the names are plain
-- columns: the planner counts the meters a chart groups by from the statistics below,
-- and leaves the join out of the charts that name no device column. DevEUIs are
-- hexadecimal: compared byte by byte ("C"), counting distinct meters costs half as much
-- as through the database's libc locale. A changed collation needs the view recreated.
CREATE OR REPLACE VIEW dash_water_daily AS
SELECT w.day::timestamp AS day,
       w.dev_eui COLLATE "C" AS dev_eui,
       d.name AS device_name,
       d.address,
       w.index_l / 1000.0 AS index_m3,
       w.volume_l / 1000.0 AS consumption_m3,
       coalesce(w.readings, 0)::bigint AS readings
FROM water_daily w
LEFT JOIN analytics_devices d ON d.dev_eui = w.dev_eui;
