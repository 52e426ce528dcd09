-- Waste: the latest fill level of each container (waste_containers; the level of a
-- container reporting only its distance too), with what to do about it.
CREATE OR REPLACE VIEW dash_waste_latest AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.address,
       c.measured_at AS measured_at_utc,
       (c.measured_at AT TIME ZONE 'Europe/Paris') AS measured_at,
       c.level_pct AS fill_pct,
       CASE WHEN c.level_pct >= 80 THEN 'À vider'
            WHEN c.level_pct >= 60 THEN 'Bientôt plein'
            ELSE 'Normal' END AS fill_status
FROM waste_containers c
JOIN analytics_devices d ON d.dev_eui = c.dev_eui
WHERE d.active;
