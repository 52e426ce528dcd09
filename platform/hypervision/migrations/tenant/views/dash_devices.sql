-- The member's devices with their names and places, from its own copy of the catalogue
-- (analytics_devices, kept by `tenants apply` and the refresh job: hypervision.analytics
-- .members.sync), so that it reads the same on whichever server the member is placed.
CREATE OR REPLACE VIEW dash_devices AS
SELECT dev_eui, name, model_id, category, data_class, building, room, address,
       installed_on, active
FROM analytics_devices;
