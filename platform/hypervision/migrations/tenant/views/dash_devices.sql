-- The member's devices with their names and places (see hv_shared.member_devices): the
-- function takes the member's slug, which is the schema's name without `tenant_`.
DO $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE VIEW dash_devices AS SELECT * FROM hv_shared.member_devices(%L)',
        regexp_replace(current_schema(), '^tenant_', ''));
END
$$;
