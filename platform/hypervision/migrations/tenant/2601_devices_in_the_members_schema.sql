-- The member's devices as its dashboards list them (views/dash_devices.sql) come from its
-- own copy, analytics_devices, rather than from the catalogue: a member placed on another
-- server than the primary has no catalogue rows there (docs/scale.md), and the planner
-- knows the size of a table, not of a function's result. The copy gains the installation
-- date; the next refresh (or `tenants apply`) fills it.
ALTER TABLE analytics_devices ADD COLUMN IF NOT EXISTS installed_on date;
UPDATE analytics_settings SET catalogue_mark = NULL;
