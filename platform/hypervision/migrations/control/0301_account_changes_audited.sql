-- Every change of an account, an API token or an access grant gets an audit entry written
-- by the database itself, whoever makes it (the API's role included, even bypassing the
-- platform's code): actor `system:database`, the session's login role in params, the
-- changed columns before and after. Secrets (password and token hashes) appear only as
-- "(changed)". A token's `last_used_at`, touched by every request, is not a change worth
-- an entry. The platform's own code writes its usual, richer entry as well.
CREATE FUNCTION hv.audit_account_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, hv
    AS $$
DECLARE
    old_row jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
    new_row jsonb := to_jsonb(NEW);
    before_ jsonb := '{}'::jsonb;
    after_ jsonb := '{}'::jsonb;
    k text;
BEGIN
    FOR k IN SELECT jsonb_object_keys(new_row) LOOP
        CONTINUE WHEN k IN ('last_used_at', 'updated_at');
        IF old_row -> k IS DISTINCT FROM new_row -> k THEN
            IF k IN ('password_hash', 'token_hash') THEN
                IF TG_OP = 'UPDATE' THEN
                    before_ := before_ || jsonb_build_object(k, '(secret)');
                END IF;
                after_ := after_ || jsonb_build_object(k, '(changed)');
            ELSE
                IF TG_OP = 'UPDATE' THEN
                    before_ := before_ || jsonb_build_object(k, old_row -> k);
                END IF;
                after_ := after_ || jsonb_build_object(k, new_row -> k);
            END IF;
        END IF;
    END LOOP;
    IF after_ = '{}'::jsonb THEN
        RETURN NULL;
    END IF;
    INSERT INTO hv.audit_log (actor, member_slug, action, target, params, source, before, after)
    VALUES ('system:database', new_row ->> 'member_slug',
            TG_TABLE_NAME || '.row-' || lower(TG_OP), 'hv.' || TG_TABLE_NAME || ':' || NEW.id,
            jsonb_build_object('session_user', session_user::text), 'job',
            CASE WHEN TG_OP = 'UPDATE' THEN before_ END, after_);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION hv.audit_account_change() FROM PUBLIC;

CREATE TRIGGER accounts_audited AFTER INSERT OR UPDATE ON hv.accounts
    FOR EACH ROW EXECUTE FUNCTION hv.audit_account_change();
CREATE TRIGGER api_tokens_audited AFTER INSERT OR UPDATE ON hv.api_tokens
    FOR EACH ROW EXECUTE FUNCTION hv.audit_account_change();
CREATE TRIGGER access_grants_audited AFTER INSERT OR UPDATE ON hv.access_grants
    FOR EACH ROW EXECUTE FUNCTION hv.audit_account_change();
