-- The delivery log of sharing agreements (hypervision.sharing.deliveries): one row per
-- delivery, sent or failed, readable by both members (the API lists it to each). A sent
-- delivery holds the snapshot it read (`cursor`, as export cursors): the next one sends
-- exactly the rows written since.
CREATE TABLE hv.share_deliveries (
    id            bigserial PRIMARY KEY,
    agreement_id  bigint NOT NULL REFERENCES hv.share_agreements (id),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL CHECK (status IN ('sent', 'failed')),
    attempts      integer NOT NULL,
    rows          bigint NOT NULL DEFAULT 0,
    format        text NOT NULL,
    target        text NOT NULL,        -- sftp://user@host:port/path/file or the URL
    file_name     text NOT NULL,
    sha256        text,
    cursor        text,                 -- hypervision.export.cursor token; NULL if failed
    error         text
);
CREATE INDEX share_deliveries_agreement_idx ON hv.share_deliveries (agreement_id, id);
REVOKE ALL ON hv.share_deliveries FROM PUBLIC;
