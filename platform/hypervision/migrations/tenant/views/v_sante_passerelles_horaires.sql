-- Uplinks heard per gateway and hour, and each gateway's state.
CREATE OR REPLACE VIEW v_sante_passerelles_horaires AS
SELECT g.bucket AS heure,
       g.bucket AT TIME ZONE p.fuseau AS heure_locale,
       g.gateway_id AS passerelle,
       g.uplinks AS trames,
       g.devices AS dispositifs
FROM gateway_hourly g CROSS JOIN v_parametres p;
