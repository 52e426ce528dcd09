-- Collections detected (falls of the level).
CREATE OR REPLACE VIEW dash_waste_collections AS
SELECT c.time,
       c.time AT TIME ZONE p.fuseau AS time_local,
       c.dev_eui,
       coalesce(d.name, c.dev_eui) AS device_name,
       d.address,
       c.level_before AS level_before_pct,
       c.level_after AS level_after_pct
FROM waste_collections c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dev_eui;
