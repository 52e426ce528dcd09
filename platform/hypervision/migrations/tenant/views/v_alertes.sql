-- Alerts, with French labels.
CREATE OR REPLACE VIEW v_alertes AS
SELECT a.id,
       a.rule AS regle,
       a.dev_eui AS dispositif,
       coalesce(d.name, a.dev_eui) AS nom,
       CASE a.severity WHEN 'info' THEN 'Information' WHEN 'warning' THEN 'Avertissement'
                       ELSE 'Critique' END AS gravite,
       CASE a.state WHEN 'open' THEN 'Ouverte' WHEN 'acknowledged' THEN 'Prise en compte'
                    ELSE 'Fermée' END AS etat,
       a.message,
       a.since AS depuis,
       a.opened_at AS ouverte_le,
       a.acknowledged_at AS prise_en_compte_le,
       a.acknowledged_by AS prise_en_compte_par,
       a.closed_at AS fermee_le,
       a.closed_by AS fermee_par,
       a.close_reason AS motif_fermeture
FROM alerts a
LEFT JOIN analytics_devices d ON d.dev_eui = a.dev_eui;
