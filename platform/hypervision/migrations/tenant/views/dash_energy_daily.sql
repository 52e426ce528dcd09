-- Energy per meter or lighting cabinet and local day, from its cumulative counter
-- (energy.active, Wh): the day's rise plus the step since the previous day's last
-- reading; a counter that went back (reset) counts nothing.
CREATE OR REPLACE VIEW dash_energy_daily AS
SELECT r.day::timestamp AS day,
       r.dev_eui,
       coalesce(d.name, r.dev_eui) AS device_name,
       coalesce(d.building, d.address, 'Sans bâtiment') AS building,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       greatest(r.last - coalesce(prev.last, r.first), 0) / 1000.0 AS energy_kwh
FROM rollup_daily r
LEFT JOIN rollup_daily prev
       ON prev.dev_eui = r.dev_eui AND prev.metric = r.metric AND prev.day = r.day - 1
LEFT JOIN analytics_devices d ON d.dev_eui = r.dev_eui
WHERE r.metric = 'energy.active';
