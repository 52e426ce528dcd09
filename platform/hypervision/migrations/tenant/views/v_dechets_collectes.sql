-- Collections detected: each fall of a container's level.
CREATE OR REPLACE VIEW v_dechets_collectes AS
SELECT c.time AS date_heure,
       c.time AT TIME ZONE p.fuseau AS date_heure_locale,
       c.dev_eui AS dispositif,
       coalesce(d.name, c.dev_eui) AS conteneur,
       c.level_before AS niveau_avant_pct,
       c.level_after AS niveau_apres_pct
FROM waste_collections c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dev_eui;
