-- Silences that are never negative.
--
-- 1. A gateway's "heard until" was the end of its latest hour bucket (bucket + 1 hour):
--    for a gateway heard during the current hour that is up to an hour in the future, so
--    the network health dashboard showed a negative silence (-0.4 h at twenty past). The
--    refresh job now keeps, per gateway and hour, the time of the last uplink it heard
--    (hypervision.analytics.health.recompute_gateways); buckets written before this
--    migration keep the end of their hour until they are rewritten.
-- 2. An uplink's time is ChirpStack's (the gateways' reception), taken on another host
--    than the database's: a clock a little ahead puts a last reception in the database's
--    future. A silence is then 0 (hours, or whole days without a reading: -1 before),
--    never negative, and "heard until" is never later than now. (A CASE rather than
--    greatest(): greatest() ignores NULLs, and a device never heard has no silence.)
ALTER TABLE gateway_hourly ADD COLUMN last_heard timestamptz;

CREATE OR REPLACE VIEW v_sante_passerelles AS
SELECT g.gateway_id AS passerelle,
       least(max(coalesce(g.last_heard, g.bucket + interval '1 hour')), now())
           AS entendue_jusqu_a,
       sum(g.uplinks) FILTER (WHERE g.bucket >= now() - interval '24 hours') AS trames_24h,
       (least(max(coalesce(g.last_heard, g.bucket + interval '1 hour')), now())
            < now() - make_interval(mins => max(p.passerelle_silence_minutes))) AS muette
FROM gateway_hourly g CROSS JOIN v_parametres p
WHERE g.bucket >= now() - interval '7 days'
GROUP BY g.gateway_id;

CREATE OR REPLACE VIEW dash_gateways AS
SELECT g.passerelle AS gateway_id,
       g.entendue_jusqu_a AT TIME ZONE p.fuseau AS heard_until,
       coalesce(g.trames_24h, 0) AS uplinks_24h,
       round((greatest(extract(epoch FROM now() - g.entendue_jusqu_a), 0) / 3600.0)::numeric, 1)
           AS hours_silent,
       CASE WHEN g.muette THEN 'Hors ligne' ELSE 'En ligne' END AS status
FROM v_sante_passerelles g
CROSS JOIN v_parametres p;

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

CREATE OR REPLACE VIEW dash_water_quality AS
SELECT d.dev_eui,
       d.name AS device_name,
       d.address,
       s.last_seen AT TIME ZONE p.fuseau AS last_reading,
       CASE WHEN s.last_seen > now() THEN 0
            ELSE floor(extract(epoch FROM now() - s.last_seen) / 86400)::integer
       END AS days_without_reading,
       coalesce(g.gaps, 0) AS gaps_30d,
       coalesce(g.hours, 0) AS gap_hours_30d,
       coalesce(g.backflows, 0) AS backflows_30d,
       coalesce(g.backflow_m3, 0) AS backflow_m3_30d,
       coalesce(g.replacements, 0) AS replacements_30d,
       coalesce(g.rollovers, 0) AS rollovers_30d,
       CASE WHEN s.last_seen IS NULL THEN 'Jamais relevé'
            WHEN s.last_seen < now() - interval '7 days' THEN 'Non relevé depuis 7 jours ou plus'
            WHEN s.last_seen < now() - interval '1 day' THEN 'Non relevé depuis plus d''un jour'
            WHEN g.gaps > 0 THEN 'Relèves manquantes'
            ELSE 'Normal' END AS quality
FROM analytics_devices d
CROSS JOIN v_parametres p
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
LEFT JOIN (
    SELECT dev_eui,
           count(*) FILTER (WHERE kind = 'gap') AS gaps,
           round((sum(extract(epoch FROM time - previous_time)) FILTER (WHERE kind = 'gap')
                  / 3600.0)::numeric, 1) AS hours,
           count(*) FILTER (WHERE kind = 'backflow') AS backflows,
           -sum(volume_l) FILTER (WHERE kind = 'backflow') / 1000.0 AS backflow_m3,
           count(*) FILTER (WHERE kind = 'replacement') AS replacements,
           count(*) FILTER (WHERE kind = 'rollover') AS rollovers
    FROM water_events
    WHERE time >= now() - interval '30 days'
    GROUP BY dev_eui
) g ON g.dev_eui = d.dev_eui
WHERE d.category = 'water' AND d.active;
