-- Views behind the member's Superset dashboards (dashboards/*.yaml; issue 5). Applied in
-- the member's schema as its owner role; the reader role gets SELECT on them (default
-- privileges, and again below), and Superset reads them through that role only.
--
-- Times: `time` stays a timestamptz so that a dashboard's time filter uses the
-- hypertables' time index; `time_local` (and `day`) are French local time without a
-- zone, which is what Superset shows (it treats every timestamp as naive).
-- These views compute from raw rows; the rollups of issue 6 may replace their bodies.

-- The member's devices with their names and places (see hv_shared.member_devices).
DO $$
BEGIN
    EXECUTE format(
        'CREATE VIEW dash_devices AS SELECT * FROM hv_shared.member_devices(%L)',
        regexp_replace(current_schema(), '^tenant_', ''));
END
$$;

-- Every measurement with its device's name and a French label for its metric.
CREATE VIEW dash_measurements AS
SELECT m.time,
       (m.time AT TIME ZONE 'Europe/Paris') AS time_local,
       m.dev_eui,
       coalesce(d.name, m.dev_eui) AS device_name,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       d.building,
       d.room,
       m.metric,
       coalesce(l.label, m.metric) AS metric_label,
       m.value,
       m.unit
FROM measurements m
LEFT JOIN dash_devices d ON d.dev_eui = m.dev_eui
LEFT JOIN (VALUES
    ('water.index', 'Index (L)'),
    ('water.flow', 'Débit (L/h)'),
    ('fill.distance', 'Distance aux déchets (mm)'),
    ('fill.level', 'Remplissage (%)'),
    ('air.co2', 'CO₂ (ppm)'),
    ('air.temperature', 'Température (°C)'),
    ('air.humidity', 'Humidité (%)'),
    ('battery.level', 'Batterie (%)'),
    ('battery.voltage', 'Tension batterie (V)'),
    ('energy.active', 'Énergie active (Wh)'),
    ('power.active', 'Puissance active (W)'),
    ('lamp.dim', 'Gradation (%)'),
    ('lamp.on', 'Allumage')
) AS l (metric, label) ON l.metric = m.metric;

-- Water: consumption per meter and local day, from the cumulative index (litres). A lower
-- index than the day before (rollover, meter swap) counts as no consumption here.
CREATE VIEW dash_water_daily AS
WITH daily AS (
    SELECT dev_eui,
           date_trunc('day', time AT TIME ZONE 'Europe/Paris') AS day,
           max(value) AS index_l,
           count(*) AS readings
    FROM measurements
    WHERE metric = 'water.index'
    GROUP BY 1, 2
)
SELECT w.day,
       w.dev_eui,
       coalesce(d.name, w.dev_eui) AS device_name,
       d.address,
       w.index_l / 1000.0 AS index_m3,
       greatest(w.index_l - lag(w.index_l) OVER (PARTITION BY w.dev_eui ORDER BY w.day), 0)
           / 1000.0 AS consumption_m3,
       w.readings
FROM daily w
LEFT JOIN dash_devices d ON d.dev_eui = w.dev_eui;

-- Waste: the latest fill level of each container, with what to do about it.
CREATE VIEW dash_waste_latest AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.address,
       last.time AS measured_at_utc,
       (last.time AT TIME ZONE 'Europe/Paris') AS measured_at,
       last.value AS fill_pct,
       CASE WHEN last.value >= 80 THEN 'À vider'
            WHEN last.value >= 60 THEN 'Bientôt plein'
            ELSE 'Normal' END AS fill_status
FROM dash_devices d
CROSS JOIN LATERAL (
    SELECT m.time, m.value FROM measurements m
    WHERE m.dev_eui = d.dev_eui AND m.metric = 'fill.level'
    ORDER BY m.time DESC LIMIT 1
) last
WHERE d.active;

-- Radio: every uplink with its device, for reception quality and activity charts.
CREATE VIEW dash_uplinks AS
SELECT u.time,
       (u.time AT TIME ZONE 'Europe/Paris') AS time_local,
       u.dev_eui,
       coalesce(d.name, u.dev_eui) AS device_name,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       u.f_cnt,
       u.rssi,
       u.snr,
       u.dr,
       u.gateway_count
FROM uplinks u
LEFT JOIN dash_devices d ON d.dev_eui = u.dev_eui;

-- Health: one row per active device, with when it was last heard and a French status.
CREATE VIEW dash_device_health AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       d.model_id,
       (s.last_seen AT TIME ZONE 'Europe/Paris') AS last_seen,
       round((extract(epoch FROM now() - s.last_seen) / 3600.0)::numeric, 1) AS hours_since_seen,
       coalesce(s.battery_level, battery.value) AS battery_pct,
       s.last_rssi AS rssi,
       s.last_snr AS snr,
       s.last_dr AS dr,
       s.uplinks_seen,
       CASE WHEN s.last_seen IS NULL THEN 'Jamais entendu'
            WHEN s.last_seen < now() - interval '24 hours' THEN 'Silencieux'
            WHEN coalesce(s.battery_level, battery.value) < 20 THEN 'Batterie faible'
            ELSE 'Normal' END AS health_status
FROM dash_devices d
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
LEFT JOIN LATERAL (
    SELECT m.value FROM measurements m
    WHERE m.dev_eui = d.dev_eui AND m.metric = 'battery.level'
    ORDER BY m.time DESC LIMIT 1
) battery ON true
WHERE d.active;

DO $$
BEGIN
    EXECUTE format(
        'GRANT SELECT ON dash_devices, dash_measurements, dash_water_daily, dash_waste_latest,'
        ' dash_uplinks, dash_device_health TO %I',
        regexp_replace(current_user, '_owner$', '_reader'));
END
$$;
