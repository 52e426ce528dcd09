-- Every measurement with its device's name and a French label for its metric.
CREATE OR REPLACE VIEW dash_measurements AS
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
