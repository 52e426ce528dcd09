-- A member's active devices, identifiers only, for what counts them and needs nothing
-- else from the catalogue (the console's home page counts them by state, joined with the
-- member's device_state). hv_shared.member_devices reads each device's whole declaration
-- (its JSON) for its place and data class; this one reads the index below only. Same
-- rule as hv_shared.member_devices: rows only to a session whose login may act as the
-- member's reader role.
CREATE INDEX devices_member_active_idx ON hv.devices (member_slug, dev_eui) WHERE active;

CREATE FUNCTION hv_shared.member_active_devices(p_member text)
RETURNS TABLE (dev_eui text)
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
    SELECT d.dev_eui FROM hv.devices d WHERE d.member_slug = p_member AND d.active;
END
$$;
