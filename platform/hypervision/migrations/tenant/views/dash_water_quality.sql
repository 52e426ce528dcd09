-- Data quality and index events per active meter: when it was last heard, for how many
-- whole days it has not been, its gaps between readings, reverse flows, swaps and
-- rollovers over the last 30 days.
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
