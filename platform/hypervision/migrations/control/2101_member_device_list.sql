-- A device's data class and building, kept from its declaration (spec) by PostgreSQL
-- itself, and a member's active devices with the columns a list shows and filters on
-- (the console's device list reads a member's whole catalogue for its count, filters and
-- choices): read as columns, not parsed from each declaration's JSON at every request.
-- Same rule as hv_shared.member_devices: rows only to a session whose login may act as
-- the member's reader role.
ALTER TABLE hv.devices
    ADD COLUMN spec_data_class text
        GENERATED ALWAYS AS (coalesce(spec ->> 'data_class', 'technical')) STORED,
    ADD COLUMN spec_building text
        GENERATED ALWAYS AS (spec -> 'location' ->> 'building') STORED;

CREATE FUNCTION hv_shared.member_device_list(p_member text)
RETURNS TABLE (
    dev_eui     text,
    name        text,
    model_id    text,
    data_class  text,
    building    text
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
    SELECT d.dev_eui, d.name, d.model_id, d.spec_data_class, d.spec_building
    FROM hv.devices d WHERE d.member_slug = p_member AND d.active;
END
$$;
