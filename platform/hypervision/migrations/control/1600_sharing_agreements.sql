-- Sharing agreements (hypervision.sharing): a provider member lets a recipient member (or
-- an external partner) read some of its data, declared in the provider's tenant file.
--
-- 1. `tenants apply` mirrors each declared agreement into hv.share_agreements and builds
--    the schema `share_<provider>__<name>`: security-barrier views owned by the
--    provider's owner role, limited to the agreement's devices, metrics and period, and
--    granted to the recipient's reader role. The database enforces the scope.
-- 2. Every view starts with `hv.share_gate(agreement, view)`, evaluated once per query:
--    it refuses the read unless the agreement is active now, and writes one audit entry
--    in each member's journal (provider and recipient) in the reader's transaction.
-- 3. The expiry job (hypervision.jobs.sharing) revokes the grants of agreements past
--    their end and marks them expired, audited; the gate refuses them even before.
-- Reads made in SQL (a reader's session, Superset) are a source of audit entries too.
ALTER TABLE hv.audit_log DROP CONSTRAINT audit_log_source_check;
ALTER TABLE hv.audit_log ADD CONSTRAINT audit_log_source_check
    CHECK (source IN ('api', 'cli', 'job', 'sql'));

CREATE TABLE hv.share_agreements (
    id                 bigserial PRIMARY KEY,
    provider           text NOT NULL REFERENCES hv.members (slug),
    name               text NOT NULL,
    recipient_member   text REFERENCES hv.members (slug),
    recipient_partner  text,
    schema_name        text NOT NULL UNIQUE,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    spec               jsonb NOT NULL,
    state              text NOT NULL DEFAULT 'active'
                       CHECK (state IN ('active', 'expired', 'withdrawn')),
    ended_at           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, name),
    CHECK ((recipient_member IS NULL) <> (recipient_partner IS NULL)),
    CHECK (ends_at > starts_at)
);

-- Runs as its owner (the superuser who migrates): the reader calling it needs no right
-- on the agreements nor on the audit trail. `session_user` is the login role reading.
CREATE FUNCTION hv.share_gate(agreement bigint, view_name text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, hv
    AS $$
DECLARE
    a hv.share_agreements;
    params jsonb;
BEGIN
    SELECT * INTO a FROM hv.share_agreements WHERE id = agreement;
    IF NOT FOUND OR a.state <> 'active' OR now() < a.starts_at OR now() >= a.ends_at THEN
        RAISE EXCEPTION 'sharing agreement % is not in force: read refused', agreement
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    params := jsonb_build_object('agreement', a.provider || '/' || a.name,
                                 'view', a.schema_name || '.' || view_name,
                                 'role', session_user::text,
                                 'application', current_setting('application_name', true));
    INSERT INTO hv.audit_log (actor, member_slug, action, target, params, source)
    SELECT 'system:sql:' || session_user::text, side.member, 'share.read',
           a.schema_name || '.' || view_name, params || jsonb_build_object('side', side.name),
           'sql'
    FROM (VALUES (1, a.provider, 'provider'), (2, a.recipient_member, 'recipient'))
         AS side (n, member, name)
    WHERE side.member IS NOT NULL
    ORDER BY side.n;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION hv.share_gate(bigint, text) FROM PUBLIC;
REVOKE ALL ON hv.share_agreements FROM PUBLIC;
