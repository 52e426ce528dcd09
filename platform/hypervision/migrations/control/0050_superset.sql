-- Dashboards (dashboards/README.md): what Superset provisioning records, the device catalogue a member's
-- dashboards may read, and the operator's non-personal aggregates across members.
-- Applied once, as the superuser. See platform/hypervision/superset/README.md.

-- 1. What provisioning created in Superset, per member: on the next apply, an object that
--    a template no longer produces is deleted from Superset (found by its uuid).
CREATE TABLE hv.superset_objects (
    member_slug  text NOT NULL,         -- '' for the operator's objects
    kind         text NOT NULL CHECK (kind IN ('database', 'dataset', 'chart', 'dashboard')),
    uuid         uuid NOT NULL,
    template     text NOT NULL,         -- dashboards/<template>.yaml, or '' for a database
    name         text NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, uuid)
);
CREATE INDEX superset_objects_member_idx ON hv.superset_objects (member_slug);

-- What each target (a member, or '' for the operator) was last applied from: a digest of
-- its rendered bundle, password and roles. An unchanged target is not imported again.
CREATE TABLE hv.superset_targets (
    target_key  text PRIMARY KEY,
    digest      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- The Superset accounts provisioned from each member's `users:`: one no longer declared
-- is deactivated at the next apply.
CREATE TABLE hv.superset_users (
    member_key  text NOT NULL,          -- 'users:<slug>'
    username    text NOT NULL,
    PRIMARY KEY (member_key, username)
);

-- 2. A member's own devices, readable from its schema. The registry (hv.devices) is shared
--    and member roles cannot read it; this function can, and returns the rows of one
--    member only to a session whose login may act as that member's reader role. Anyone
--    may call it: a member's reader asking for another member gets no rows.
CREATE SCHEMA hv_shared;
GRANT USAGE ON SCHEMA hv_shared TO PUBLIC;

CREATE FUNCTION hv_shared.member_devices(p_member text)
RETURNS TABLE (
    dev_eui       text,
    name          text,
    model_id      text,
    category      text,
    data_class    text,
    building      text,
    room          text,
    address       text,
    installed_on  date,
    active        boolean
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reader text := p_member || '_reader';
BEGIN
    -- session_user, not current_user: inside this function current_user is its owner.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader)
       OR NOT pg_has_role(session_user, reader, 'USAGE') THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT d.dev_eui, d.name, d.model_id, dm.category,
           coalesce(d.spec->>'data_class', 'technical'),
           d.spec->'location'->>'building', d.spec->'location'->>'room',
           d.spec->'location'->>'address', (d.spec->>'installed_on')::date, d.active
    FROM hv.devices d
    JOIN hv.device_models dm ON dm.id = d.model_id
    WHERE d.member_slug = p_member;
END
$$;

-- French names of the device categories (hv.device_models.category), for dashboards.
CREATE FUNCTION hv_shared.category_label(p_category text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE p_category
        WHEN 'water' THEN 'Eau'
        WHEN 'waste' THEN 'Déchets'
        WHEN 'air' THEN 'Air intérieur'
        WHEN 'lighting' THEN 'Éclairage public'
        WHEN 'energy' THEN 'Énergie'
        ELSE coalesce(p_category, 'Autre') END
$$;

-- 3. The operator's view of the network: counts per member, never a reading, a device
--    name or a location. Read by the operator's Superset connection, as hv_operator_reader
--    (login and password are set by `hypervision superset apply`).
CREATE SCHEMA hv_operator;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hv_operator_reader') THEN
        CREATE ROLE hv_operator_reader NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO hv_operator_reader', current_database());
END
$$;

-- Uplinks and other events per member, day and outcome (usage metering, cost sharing).
CREATE VIEW hv_operator.events_per_member_day AS
SELECT o.day,
       o.member_slug,
       coalesce(m.name, '(non attribué)') AS member_name,
       o.event_type,
       o.outcome,
       o.events,
       o.bytes
FROM hv.ingest_outcomes o
LEFT JOIN hv.members m ON m.slug = o.member_slug;

-- Declared devices per member and category.
CREATE VIEW hv_operator.devices_per_member AS
SELECT m.slug AS member_slug,
       m.name AS member_name,
       dm.category,
       hv_shared.category_label(dm.category) AS category_label,
       count(*) FILTER (WHERE d.active) AS active_devices,
       count(*) AS declared_devices
FROM hv.devices d
JOIN hv.members m ON m.slug = d.member_slug
JOIN hv.device_models dm ON dm.id = d.model_id
GROUP BY m.slug, m.name, dm.category;

-- Dead letters per day and reason.
CREATE VIEW hv_operator.dead_letters_per_day AS
SELECT (received_at AT TIME ZONE 'Europe/Paris')::date AS day,
       coalesce(member_slug, '') AS member_slug,
       reason,
       count(*) AS dead_letters
FROM hv.dead_letters
GROUP BY 1, 2, 3;

-- Device health per member, from each member's device_state: counts only.
CREATE FUNCTION hv_operator.device_health_counts()
RETURNS TABLE (
    member_slug   text,
    member_name   text,
    devices       bigint,
    seen_24h      bigint,
    silent_24h    bigint,
    never_seen    bigint,
    low_battery   bigint,
    avg_rssi      double precision,
    avg_snr       double precision
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member record;
BEGIN
    FOR member IN
        SELECT m.slug, m.name, m.schema_name FROM hv.members m
        JOIN pg_namespace n ON n.nspname = m.schema_name
        ORDER BY m.slug
    LOOP
        RETURN QUERY EXECUTE format(
            'SELECT %L::text, %L::text, count(*),'
            '  count(*) FILTER (WHERE s.last_seen >= now() - interval ''24 hours''),'
            '  count(*) FILTER (WHERE s.last_seen < now() - interval ''24 hours''),'
            '  count(*) FILTER (WHERE s.last_seen IS NULL),'
            '  count(*) FILTER (WHERE s.battery_level < 20),'
            '  round(avg(s.last_rssi)::numeric, 1)::double precision,'
            '  round(avg(s.last_snr)::numeric, 1)::double precision'
            ' FROM hv.devices d LEFT JOIN %I.device_state s ON s.dev_eui = d.dev_eui'
            ' WHERE d.member_slug = %L AND d.active',
            member.slug, member.name, member.schema_name, member.slug);
    END LOOP;
END
$$;
CREATE VIEW hv_operator.device_health_per_member AS
SELECT * FROM hv_operator.device_health_counts();

-- Gateways: uplinks heard per gateway over the last 24 hours, all members together.
CREATE FUNCTION hv_operator.gateway_activity_counts(p_hours integer)
RETURNS TABLE (gateway_id text, uplinks bigint, members bigint, last_heard timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parts text[];
BEGIN
    SELECT array_agg(format(
        'SELECT g AS gateway_id, %L::text AS member, u.time'
        ' FROM %I.uplinks u, unnest(u.gateways) g'
        ' WHERE u.time >= now() - make_interval(hours => %s)',
        m.slug, m.schema_name, p_hours))
    INTO parts
    FROM hv.members m JOIN pg_namespace n ON n.nspname = m.schema_name;
    IF parts IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT gateway_id, count(*), count(DISTINCT member), max(time) FROM ('
        || array_to_string(parts, ' UNION ALL ') || ') heard GROUP BY gateway_id';
END
$$;
CREATE VIEW hv_operator.gateway_activity_24h AS
SELECT * FROM hv_operator.gateway_activity_counts(24);

REVOKE ALL ON FUNCTION hv_operator.device_health_counts() FROM PUBLIC;
REVOKE ALL ON FUNCTION hv_operator.gateway_activity_counts(integer) FROM PUBLIC;
GRANT USAGE ON SCHEMA hv_operator TO hv_operator_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA hv_operator TO hv_operator_reader;
GRANT EXECUTE ON FUNCTION hv_operator.device_health_counts() TO hv_operator_reader;
GRANT EXECUTE ON FUNCTION hv_operator.gateway_activity_counts(integer) TO hv_operator_reader;
