-- Members on several database servers (hypervision.placement, docs/scale.md).
--
-- hv.members.server names the server holding the member's schema (NULL: the primary,
-- which holds this catalogue). ingest_paused_at is set while the member moves between
-- servers (hypervision.tenancy.move): the pipeline leaves its events in the queue.
-- moved_from keeps the server the last move left a copy on, until it is dropped.
ALTER TABLE hv.members ADD COLUMN server text;
ALTER TABLE hv.members ADD COLUMN ingest_paused_at timestamptz;
ALTER TABLE hv.members ADD COLUMN moved_from text;

-- Written on a member's server, in the transaction that stores the member's rows of one
-- batch: what each of its events became (outcome counts). A batch delivered again finds
-- its receipt and reports the same outcomes instead of counting duplicates; nothing is
-- written twice.
CREATE TABLE hv.ingest_receipts (
    key          bytea PRIMARY KEY,
    member_slug  text NOT NULL,
    counts       jsonb NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now()
);

-- On the primary, in the transaction that adds a receipt's counts to hv.ingest_outcomes:
-- a receipt is counted once, however many times its batch is delivered.
CREATE TABLE hv.ingest_counted (
    key          bytea PRIMARY KEY,
    member_slug  text NOT NULL,
    server       text NOT NULL,
    counted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_receipts_written_idx ON hv.ingest_receipts (written_at);
CREATE INDEX ingest_counted_counted_idx ON hv.ingest_counted (counted_at);
