-- One public surface for a member's schema: its tables and the dash_* views
-- (views/README.md). The French v_* views repeated, with other column names, what the
-- dash_* views and the tables show, and no dashboard read them. Those that no dash_* view
-- reads go; the four that dash_* views are built on (v_parametres, v_sante_passerelles,
-- v_eau_conso_anormale, v_dechets_conteneurs) stay as their building blocks.
DROP VIEW IF EXISTS
    v_air_icone_journalier, v_air_salles_horaires, v_alertes, v_dechets_collectes,
    v_eau_conso_horaire, v_eau_conso_journaliere, v_eau_conso_mensuelle, v_eau_evenements,
    v_eau_nuits, v_mesures_horaires, v_mesures_journalieres, v_sante_dispositifs,
    v_sante_passerelles_horaires;
