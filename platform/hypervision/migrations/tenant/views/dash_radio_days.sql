-- Radio reception per device and local day, from radio_daily (kept by the refresh job):
-- uplinks received, and the sums and counts of their RSSI and SNR (an average is
-- SUM(rssi_sum) / SUM(rssi_n)). What the health dashboard's charts over a week read, one
-- row per device and day instead of every uplink (dash_uplinks keeps those).
CREATE OR REPLACE VIEW dash_radio_days AS
SELECT r.day::timestamp AS day,
       r.dev_eui,
       coalesce(d.name, r.dev_eui) AS device_name,
       d.category,
       hv_shared.category_label(d.category) AS category_label,
       r.uplinks,
       r.rssi_sum,
       r.rssi_n,
       r.snr_sum,
       r.snr_n
FROM radio_daily r
LEFT JOIN analytics_devices d ON d.dev_eui = r.dev_eui;
