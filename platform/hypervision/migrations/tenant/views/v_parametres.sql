-- The member's settings, as columns.
CREATE OR REPLACE VIEW v_parametres AS
SELECT coalesce(config ->> 'timezone', 'Europe/Paris') AS fuseau,
       coalesce((config -> 'water' ->> 'night_start')::time, '01:00') AS nuit_debut,
       coalesce((config -> 'water' ->> 'night_end')::time, '05:00') AS nuit_fin,
       coalesce((config -> 'water' ->> 'abnormal_history_days')::integer, 28) AS eau_historique_jours,
       coalesce((config -> 'water' ->> 'abnormal_min_days')::integer, 14) AS eau_historique_min_jours,
       coalesce((config -> 'water' ->> 'abnormal_sigmas')::float8, 3.0) AS eau_ecarts_types,
       coalesce((config -> 'waste' ->> 'empty_above_pct')::float8, 80.0) AS dechets_seuil_pct,
       coalesce((config -> 'waste' ->> 'full_pct')::float8, 100.0) AS dechets_plein_pct,
       coalesce((config -> 'waste' ->> 'rate_days')::integer, 7) AS dechets_jours_vitesse,
       coalesce(ARRAY(SELECT jsonb_array_elements_text(config -> 'waste' -> 'round_days')),
                ARRAY['mon', 'tue', 'wed', 'thu', 'fri']) AS dechets_jours_tournee,
       coalesce((config -> 'air' ->> 'low_ppm')::float8, 800.0) AS co2_seuil_bas_ppm,
       coalesce((config -> 'air' ->> 'high_ppm')::float8, 1500.0) AS co2_seuil_haut_ppm,
       coalesce((config -> 'health' ->> 'battery_low_pct')::float8, 20.0) AS batterie_faible_pct,
       coalesce((config -> 'health' ->> 'silent_factor')::float8, 3.0) AS silence_facteur,
       coalesce((config -> 'health' ->> 'gateway_silent_minutes')::integer, 60)
           AS passerelle_silence_minutes
FROM (SELECT (SELECT config FROM analytics_settings WHERE id = 1) AS config) s;
