-- The ingestion watermark of incremental exports (platform/hypervision/export/README.md).
--
-- Rows arrive late (old timestamps, hourly history frames), so an export cursor cannot be
-- a `time`. A wall-clock `ingested_at` cannot be one either: a row takes the time its
-- transaction started, and becomes visible only when that transaction commits, possibly
-- after an export has already moved its cursor past that time.
--
-- So each row records the id of the transaction that wrote it (`ingested_xid`, the 64-bit
-- pg_current_xact_id() as a bigint), and an export cursor is the MVCC snapshot the export
-- read through (pg_current_snapshot()). The next export returns exactly the rows whose
-- transaction that snapshot did not see: id >= its xmax, or one of its in-progress ids.
-- Nothing is skipped and nothing returned twice, however long a writer stays open.
--
-- 1. A BEFORE trigger stamps the column on every INSERT and UPDATE, whatever the writer
--    passed: no writer can forget it, and rows copied from elsewhere (a staging table, an
--    archive being restored) or corrected in place count as new for the next export.
-- 2. Rows written before this migration get 0: older than any cursor, so they appear in
--    full exports and in no incremental one (no cursor can predate this column).
-- 3. BRIN indexes: within each chunk rows are appended in transaction order, so a range
--    summary skips everything older than the cursor at a tiny fraction of a btree's cost.

CREATE FUNCTION stamp_ingested_xid() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.ingested_xid := pg_catalog.pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;

ALTER TABLE uplinks ADD COLUMN ingested_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE uplinks ALTER COLUMN ingested_xid DROP DEFAULT;
CREATE TRIGGER uplinks_ingested_xid BEFORE INSERT OR UPDATE ON uplinks
    FOR EACH ROW EXECUTE FUNCTION stamp_ingested_xid();
CREATE INDEX uplinks_ingested_xid_idx ON uplinks USING brin (ingested_xid)
    WITH (autosummarize = on);

ALTER TABLE measurements ADD COLUMN ingested_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE measurements ALTER COLUMN ingested_xid DROP DEFAULT;
CREATE TRIGGER measurements_ingested_xid BEFORE INSERT OR UPDATE ON measurements
    FOR EACH ROW EXECUTE FUNCTION stamp_ingested_xid();
CREATE INDEX measurements_ingested_xid_idx ON measurements USING brin (ingested_xid)
    WITH (autosummarize = on);
