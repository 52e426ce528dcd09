-- Device health now: last heard, silence against the model's usual interval, battery.
-- Loss rates and radio trends over a window are in health.devices() (API).
CREATE OR REPLACE VIEW v_sante_dispositifs AS
SELECT d.dev_eui AS dispositif,
       d.name AS nom,
       d.model_id AS modele,
       d.category AS categorie,
       s.last_seen AS derniere_reception,
       s.last_seen AT TIME ZONE p.fuseau AS derniere_reception_locale,
       d.typical_interval_s AS intervalle_habituel_s,
       (s.last_seen IS NULL OR extract(epoch FROM now() - s.last_seen)
            > p.silence_facteur * d.typical_interval_s) AS silencieux,
       coalesce(b.value, s.battery_level) AS batterie_pct,
       coalesce(coalesce(b.value, s.battery_level) < p.batterie_faible_pct, false)
           AS batterie_faible,
       s.last_rssi AS rssi_dbm,
       s.last_snr AS snr_db,
       s.last_f_cnt AS dernier_compteur_trames
FROM analytics_devices d
CROSS JOIN v_parametres p
LEFT JOIN device_state s ON s.dev_eui = d.dev_eui
LEFT JOIN LATERAL (
    SELECT h.last AS value FROM rollup_hourly h
    WHERE h.dev_eui = d.dev_eui AND h.metric = 'battery.level'
    ORDER BY h.bucket DESC LIMIT 1
) b ON true
WHERE d.active;
