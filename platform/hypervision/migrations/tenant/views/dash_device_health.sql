-- Health: one row per active device, with when it was last heard and a French status.
CREATE OR REPLACE VIEW dash_device_health AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       d.model_id,
       (s.last_seen AT TIME ZONE 'Europe/Paris') AS last_seen,
       CASE WHEN s.last_seen > now() THEN 0
            ELSE round((extract(epoch FROM now() - s.last_seen) / 3600.0)::numeric, 1)
       END AS hours_since_seen,
       battery.value AS battery_pct,
       s.last_rssi AS rssi,
       s.last_snr AS snr,
       s.last_dr AS dr,
       s.uplinks_seen,
       CASE WHEN s.last_seen IS NULL THEN 'Jamais entendu'
            WHEN s.last_seen < now() - interval '24 hours' THEN 'Silencieux'
            WHEN battery.value < 20 THEN 'Batterie faible'
            ELSE 'Normal' END AS health_status
FROM dash_devices d
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
CROSS JOIN LATERAL (
    SELECT coalesce(s.battery_level, (
        SELECT m.value FROM measurements m
        WHERE m.dev_eui = d.dev_eui AND m.metric = 'battery.level'
        ORDER BY m.time DESC LIMIT 1)) AS value
) battery
WHERE d.active;
