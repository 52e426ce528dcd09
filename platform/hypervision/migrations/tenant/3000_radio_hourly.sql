-- Radio reception per device and hour (views/dash_radio_hours.sql): how many uplinks
-- were received, with the sums and counts of their RSSI and SNR, so that the network
-- health dashboard's charts over a week read one row per device and hour instead of every
-- uplink. The refresh job keeps it with gateway_hourly, from the same hours
-- (hypervision.analytics.health.recompute_radio); retention expires it with the device's
-- class (hypervision.retention). Applying it again changes nothing.
CREATE TABLE IF NOT EXISTS radio_hourly (
    dev_eui   text NOT NULL,
    bucket    timestamptz NOT NULL,
    uplinks   integer NOT NULL,
    rssi_sum  bigint,
    rssi_n    integer NOT NULL,
    snr_sum   double precision,
    snr_n     integer NOT NULL,
    PRIMARY KEY (dev_eui, bucket)
);
CREATE INDEX IF NOT EXISTS radio_hourly_bucket_idx ON radio_hourly (bucket);

-- The last eight days, so that the dashboard's week is whole from the first refresh on;
-- the refresh job writes the hours after its previous run.
INSERT INTO radio_hourly (dev_eui, bucket, uplinks, rssi_sum, rssi_n, snr_sum, snr_n)
SELECT dev_eui, time_bucket('1 hour', time), count(*), sum(rssi), count(rssi), sum(snr),
       count(snr)
FROM uplinks
WHERE time >= now() - interval '8 days'
GROUP BY 1, 2
ON CONFLICT DO NOTHING;
