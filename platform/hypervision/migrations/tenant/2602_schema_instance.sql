-- Which copy of the member's schema this is: one row, a new id wherever the schema is
-- created (a new member, an archive imported) and each time a move switches the member to
-- it (`tenants move` sets a new one on the target, platform/hypervision/tenancy/move.py).
--
-- Export cursors name it (platform/hypervision/export/cursor.py): a cursor holds a
-- snapshot of transaction ids, which mean something on the server that issued them only.
-- A cursor of another copy (issued before a move, or on another server) is refused with
-- the reason, rather than silently exporting the wrong rows. The row is bookkeeping, not
-- member data: backups, archives and moves do not copy it (hypervision.dump).
CREATE TABLE IF NOT EXISTS schema_instance (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    arrived text NOT NULL DEFAULT 'created' CHECK (arrived IN ('created', 'move')),
    since timestamptz NOT NULL DEFAULT now()
);
INSERT INTO schema_instance DEFAULT VALUES ON CONFLICT DO NOTHING;
