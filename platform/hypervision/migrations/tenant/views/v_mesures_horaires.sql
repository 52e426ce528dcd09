-- Rollups per device and metric.
CREATE OR REPLACE VIEW v_mesures_horaires AS
SELECT h.bucket AS heure,
       h.bucket AT TIME ZONE p.fuseau AS heure_locale,
       h.dev_eui AS dispositif,
       coalesce(d.name, h.dev_eui) AS nom,
       d.category AS categorie,
       d.building AS batiment,
       d.room AS salle,
       h.metric AS metrique,
       h.n AS nb_mesures,
       h.min AS minimum,
       h.max AS maximum,
       h.sum / h.n AS moyenne,
       h.first AS premiere_valeur,
       h.last AS derniere_valeur
FROM rollup_hourly h
CROSS JOIN v_parametres p
LEFT JOIN analytics_devices d ON d.dev_eui = h.dev_eui;
