-- Cheaper writes on the ingestion path (bench/README.md, "What limits ingest").
--
-- 1. The ingestion watermark (0020) stays what it is, a transaction id stamped on every
--    inserted or updated row whatever the writer passed, but a row that already carries
--    the current transaction's id (the column's new default, so every ordinary INSERT)
--    no longer calls the PL/pgSQL trigger: the trigger's WHEN clause is evaluated in C,
--    and the function runs only for rows that would otherwise keep another id (an UPDATE,
--    a row restored with an explicit value). About 3.7 µs saved per row.
ALTER TABLE uplinks
    ALTER COLUMN ingested_xid SET DEFAULT pg_catalog.pg_current_xact_id()::text::bigint;
DROP TRIGGER uplinks_ingested_xid ON uplinks;
CREATE TRIGGER uplinks_ingested_xid BEFORE INSERT OR UPDATE ON uplinks
    FOR EACH ROW
    WHEN (NEW.ingested_xid IS DISTINCT FROM pg_catalog.pg_current_xact_id()::text::bigint)
    EXECUTE FUNCTION stamp_ingested_xid();

ALTER TABLE measurements
    ALTER COLUMN ingested_xid SET DEFAULT pg_catalog.pg_current_xact_id()::text::bigint;
DROP TRIGGER measurements_ingested_xid ON measurements;
CREATE TRIGGER measurements_ingested_xid BEFORE INSERT OR UPDATE ON measurements
    FOR EACH ROW
    WHEN (NEW.ingested_xid IS DISTINCT FROM pg_catalog.pg_current_xact_id()::text::bigint)
    EXECUTE FUNCTION stamp_ingested_xid();

-- 2. The replay guard (ingest/store.py) looks for the same DevEUI, fCnt and bytes within
--    minutes of an uplink: (dev_eui, time DESC) finds the few uplinks of that device in
--    the window as well, so the (dev_eui, f_cnt, time) index is one B-tree too many on
--    every insert.
DROP INDEX uplinks_device_fcnt_idx;
