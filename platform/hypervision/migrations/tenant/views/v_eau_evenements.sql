-- What happened to a meter's index: rollovers, meter swaps, reverse flows and gaps.
CREATE OR REPLACE VIEW v_eau_evenements AS
SELECT e.time AS date_heure,
       e.time AT TIME ZONE p.fuseau AS date_heure_locale,
       e.dev_eui AS dispositif,
       coalesce(d.name, e.dev_eui) AS compteur,
       e.kind AS type,
       CASE e.kind WHEN 'rollover' THEN 'Tour de compteur'
                   WHEN 'replacement' THEN 'Remplacement du compteur'
                   WHEN 'backflow' THEN 'Retour d''eau'
                   WHEN 'gap' THEN 'Relevés manquants' END AS evenement,
       e.previous_time AS releve_precedent,
       e.index_before AS index_avant_l,
       e.index_after AS index_apres_l,
       e.volume_l
FROM water_events e
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = e.dev_eui;
