-- Downlinks are requested through the API, which records them with its own role: `tenants
-- apply` grants it INSERT of the columns a request sets (hypervision.api.db.
-- grant_downlink_requests), and the CLI records them as the superuser. The writer role
-- only tracks them from txack/ack events (SELECT and UPDATE, from 0040), so it loses
-- INSERT: ingestion cannot make up a downlink nobody asked for.
DO $$
BEGIN
    EXECUTE format('REVOKE INSERT ON downlinks FROM %I',
                   regexp_replace(current_user, '_owner$', '_writer'));
END $$;
