-- Every container with its forecast and whether to collect it at the day's round
-- (v_dechets_conteneurs).
CREATE OR REPLACE VIEW dash_waste_plan AS
SELECT c.dispositif AS dev_eui,
       c.conteneur AS device_name,
       d.address,
       c.niveau_pct AS fill_pct,
       c.vitesse_pct_par_jour AS fill_rate_pct_day,
       round(c.jours_avant_plein::numeric, 1) AS days_to_full,
       c.plein_le AT TIME ZONE p.fuseau AS full_at,
       c.derniere_collecte AT TIME ZONE p.fuseau AS last_collection,
       c.mesure_le AT TIME ZONE p.fuseau AS measured_at,
       c.a_vider AS to_collect,
       CASE WHEN c.a_vider THEN 'À collecter' ELSE 'Pas encore' END AS decision,
       c.motif AS reason
FROM v_dechets_conteneurs c
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = c.dispositif;
