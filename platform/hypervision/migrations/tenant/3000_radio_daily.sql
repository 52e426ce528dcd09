-- Radio reception per device and local day (views/dash_radio_days.sql): how many uplinks
-- were received, with the sums and counts of their RSSI and SNR, so that the network
-- health dashboard's charts over a week read one row per device and day instead of every
-- uplink (at 5,000 devices, 35,000 rows instead of 1.5 million uplinks or 800,000 device
-- hours). Days of the member's time zone (analytics settings). The refresh job keeps it
-- with gateway_hourly, for the days that got uplinks
-- (hypervision.analytics.health.recompute_radio); retention expires it with the device's
-- class (hypervision.retention). Applying it again changes nothing.
CREATE TABLE IF NOT EXISTS radio_daily (
    dev_eui   text NOT NULL,
    day       date NOT NULL,
    uplinks   integer NOT NULL,
    rssi_sum  bigint,
    rssi_n    integer NOT NULL,
    snr_sum   double precision,
    snr_n     integer NOT NULL,
    PRIMARY KEY (dev_eui, day)
);
-- The view's `day` is `day::timestamp` (what Superset shows and filters on, as
-- dash_water_daily's): its time filters use this index.
CREATE INDEX IF NOT EXISTS radio_daily_day_timestamp_idx ON radio_daily ((day::timestamp));

-- The last eight days, so that the dashboard's week is whole from the first refresh on.
INSERT INTO radio_daily (dev_eui, day, uplinks, rssi_sum, rssi_n, snr_sum, snr_n)
SELECT u.dev_eui, (u.time AT TIME ZONE z.zone)::date, count(*), sum(u.rssi), count(u.rssi),
       sum(u.snr), count(u.snr)
FROM uplinks u,
     (SELECT coalesce((SELECT config ->> 'timezone' FROM analytics_settings WHERE id = 1),
                      'Europe/Paris') AS zone) z
WHERE u.time >= now() - interval '8 days'
GROUP BY 1, 2
ON CONFLICT DO NOTHING;
