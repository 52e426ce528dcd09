-- Gateways that heard the member's devices over the last 7 days, offline when they have
-- heard nothing for `health.gateway_silent_minutes` (v_sante_passerelles).
CREATE OR REPLACE VIEW dash_gateways AS
SELECT g.passerelle AS gateway_id,
       g.entendue_jusqu_a AT TIME ZONE p.fuseau AS heard_until,
       coalesce(g.trames_24h, 0) AS uplinks_24h,
       round((greatest(extract(epoch FROM now() - g.entendue_jusqu_a), 0) / 3600.0)::numeric, 1)
           AS hours_silent,
       CASE WHEN g.muette THEN 'Hors ligne' ELSE 'En ligne' END AS status
FROM v_sante_passerelles g
CROSS JOIN v_parametres p;
