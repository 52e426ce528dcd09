-- Each gateway's state now: heard until (never later than now), uplinks over the last
-- 24 hours, silence.
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
