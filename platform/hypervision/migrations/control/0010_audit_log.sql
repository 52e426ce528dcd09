-- The audit trail: append-only and tamper-evident (see platform/hypervision/audit.py).
--
-- 1. Every entry is chained: `hash` is the SHA-256 of the entry's canonical text, which
--    includes the previous entry's hash. The chain is computed HERE, in a trigger, so no
--    client can write a wrong link; `hypervision audit verify` recomputes it in Python.
-- 2. Concurrent writers are serialised on the single row of hv.audit_head
--    (SELECT ... FOR UPDATE): ids and links follow one order, and a writer in
--    REPEATABLE READ that raced another gets a serialisation error, never a fork.
-- 3. UPDATE, DELETE and TRUNCATE are refused by triggers; application roles get column
--    INSERT only. A superuser can still disable triggers: `verify` is what detects that.

CREATE SEQUENCE hv.audit_log_id_seq;

CREATE TABLE hv.audit_log (
    id           bigint PRIMARY KEY,
    at           timestamptz NOT NULL,
    -- 'user:<email>', 'token:<id>', 'system:<job>' or 'cli:<os user>'.
    actor        text NOT NULL CHECK (actor ~ '^(user|token|system|cli):.+$'),
    member_slug  text,                -- NULL: platform-wide (not one member's business)
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]*$'),
    target       text NOT NULL DEFAULT '',
    params       jsonb NOT NULL DEFAULT '{}',
    rows         bigint,
    source       text NOT NULL CHECK (source IN ('api', 'cli', 'job')),
    remote_addr  text,
    request_id   text,
    before       jsonb,
    after        jsonb,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX audit_log_member_idx ON hv.audit_log (member_slug, id);
CREATE INDEX audit_log_at_idx ON hv.audit_log (at);

COMMENT ON TABLE hv.audit_log IS
    'Append-only, hash-chained audit trail; written through INSERT only, checked by `hypervision audit verify`.';

-- The head of the chain: the last entry's id and hash. Genesis is 32 zero bytes.
CREATE TABLE hv.audit_head (
    id        integer PRIMARY KEY CHECK (id = 1),
    last_id   bigint NOT NULL,
    last_hash bytea NOT NULL
);
INSERT INTO hv.audit_head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- The canonical text of an entry: each field in a fixed order, as `<octets>:<text>;`,
-- or `~;` when NULL. Length-prefixing makes it unambiguous whatever the values hold;
-- `at` is epoch microseconds and jsonb its own text form, so the session's TimeZone
-- or DateStyle never changes a hash. audit.py's `canonical()` must stay identical.
CREATE FUNCTION hv.audit_field(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT octet_length(value)::text || ':' || value || ';' $$;

CREATE FUNCTION hv.audit_canonical(e hv.audit_log) RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT 'hv-audit-v1;'
        || coalesce(hv.audit_field(e.id::text), '~;')
        || coalesce(hv.audit_field(((extract(epoch FROM e.at) * 1000000)::bigint)::text), '~;')
        || coalesce(hv.audit_field(e.actor), '~;')
        || coalesce(hv.audit_field(e.member_slug), '~;')
        || coalesce(hv.audit_field(e.action), '~;')
        || coalesce(hv.audit_field(e.target), '~;')
        || coalesce(hv.audit_field(e.params::text), '~;')
        || coalesce(hv.audit_field(e.rows::text), '~;')
        || coalesce(hv.audit_field(e.source), '~;')
        || coalesce(hv.audit_field(e.remote_addr), '~;')
        || coalesce(hv.audit_field(e.request_id), '~;')
        || coalesce(hv.audit_field(e.before::text), '~;')
        || coalesce(hv.audit_field(e.after::text), '~;')
        || coalesce(hv.audit_field(encode(e.prev_hash, 'hex')), '~;')
    $$;

-- Runs as its owner (the superuser who migrates), so writers need no right on the
-- sequence or the head: they cannot move the head or choose an id, time or hash.
CREATE FUNCTION hv.audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, hv
    AS $$
DECLARE
    head hv.audit_head;
BEGIN
    SELECT * INTO STRICT head FROM hv.audit_head WHERE id = 1 FOR UPDATE;
    NEW.id := nextval('hv.audit_log_id_seq');
    NEW.at := clock_timestamp();
    NEW.prev_hash := head.last_hash;
    NEW.hash := sha256(convert_to(hv.audit_canonical(NEW), 'UTF8'));
    UPDATE hv.audit_head SET last_id = NEW.id, last_hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON hv.audit_log
    FOR EACH ROW EXECUTE FUNCTION hv.audit_chain();

CREATE FUNCTION hv.audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'hv.audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON hv.audit_log
    FOR EACH ROW EXECUTE FUNCTION hv.audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hv.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION hv.audit_refuse_change();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON hv.audit_head
    FOR EACH ROW EXECUTE FUNCTION hv.audit_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON hv.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION hv.audit_refuse_change();

-- The writer role: INSERT of the content columns, and SELECT of `id` for RETURNING.
-- Login roles that write audit entries are granted it (INHERIT roles), or the same
-- privileges directly (NOINHERIT roles such as the ingest role): see audit.grant_writer.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hv_audit_writer') THEN
        CREATE ROLE hv_audit_writer NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON hv.audit_log, hv.audit_head FROM PUBLIC;
REVOKE ALL ON SEQUENCE hv.audit_log_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION hv.audit_chain() FROM PUBLIC;
GRANT USAGE ON SCHEMA hv TO hv_audit_writer;
GRANT INSERT (actor, member_slug, action, target, params, rows, source, remote_addr,
              request_id, before, after),
      SELECT (id)
    ON hv.audit_log TO hv_audit_writer;
