-- Radio: every uplink with its device, for reception quality and activity charts.
CREATE OR REPLACE VIEW dash_uplinks AS
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
