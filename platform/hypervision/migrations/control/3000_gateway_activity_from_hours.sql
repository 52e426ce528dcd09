-- The operator's gateway activity (hv_operator.gateway_activity_24h, the operator
-- dashboard's "Passerelles actives" and "Passerelles (24 heures)") read every uplink of
-- the last 24 hours of every member, gateway by gateway: 1.2 s at 40,000 devices
-- (bench/dashboards.py). It now reads the members' gateway_hourly, which the refresh job
-- keeps (hypervision.analytics.health.recompute_gateways), for the hours before the one
-- of the member's last refresh, and the raw uplinks from that hour on only: an hour or
-- two of uplinks instead of a day. The window is in whole hours: it starts at the
-- beginning of the hour 24 hours ago.
CREATE OR REPLACE FUNCTION hv_operator.gateway_activity_counts(p_hours integer)
RETURNS TABLE (gateway_id text, uplinks bigint, members bigint, last_heard timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record;
    cut timestamptz;
    since timestamptz := date_trunc('hour', now() - make_interval(hours => p_hours));
    parts text[] := '{}';
BEGIN
    FOR m IN
        SELECT hm.slug, hm.schema_name
        FROM hv.members hm JOIN pg_namespace n ON n.nspname = hm.schema_name
        ORDER BY hm.slug
    LOOP
        -- Hours before the one of the last refresh are complete in gateway_hourly.
        EXECUTE format('SELECT date_trunc(''hour'', watermark) FROM %I.rollup_state'
                       ' WHERE stream = ''uplinks''', m.schema_name) INTO cut;
        cut := greatest(coalesce(cut, since), since);
        parts := parts || format(
            'SELECT gateway_id, %1$L::text AS member, uplinks::bigint AS n,'
            ' coalesce(last_heard, bucket) AS heard FROM %2$I.gateway_hourly'
            ' WHERE bucket >= %3$L AND bucket < %4$L'
            ' UNION ALL'
            ' SELECT g, %1$L::text, 1, u.time FROM %2$I.uplinks u, unnest(u.gateways) g'
            ' WHERE u.time >= %4$L',
            m.slug, m.schema_name, since, cut);
    END LOOP;
    IF cardinality(parts) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT gateway_id, sum(n)::bigint, count(DISTINCT member), max(heard) FROM ('
        || array_to_string(parts, ' UNION ALL ') || ') heard GROUP BY gateway_id';
END
$$;
