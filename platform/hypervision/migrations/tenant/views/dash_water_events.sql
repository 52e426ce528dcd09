-- What happened to the indexes: rollovers, meter swaps, reverse flows and gaps.
CREATE OR REPLACE VIEW dash_water_events AS
SELECT e.time,
       e.time AT TIME ZONE p.fuseau AS time_local,
       e.dev_eui,
       coalesce(d.name, e.dev_eui) AS device_name,
       d.address,
       e.kind,
       CASE e.kind WHEN 'rollover' THEN 'Tour de compteur'
                   WHEN 'replacement' THEN 'Compteur remplacé'
                   WHEN 'backflow' THEN 'Retour d''eau'
                   WHEN 'gap' THEN 'Relèves manquantes' END AS event,
       e.previous_time AT TIME ZONE p.fuseau AS previous_reading,
       round((extract(epoch FROM e.time - e.previous_time) / 3600.0)::numeric, 1)
           AS hours_between,
       e.index_before / 1000.0 AS index_before_m3,
       e.index_after / 1000.0 AS index_after_m3,
       e.volume_l / 1000.0 AS volume_m3
FROM water_events e
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = e.dev_eui;
