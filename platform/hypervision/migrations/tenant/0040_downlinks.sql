-- Downlinks sent to the member's devices (hypervision.chirpstack.downlinks) and their
-- life: queued in ChirpStack -> sent (a `txack` event) -> acknowledged or not (an `ack`
-- event, confirmed downlinks only). Events refer to a downlink by ChirpStack's queue item
-- id; they are matched from device_events by `hypervision.chirpstack.downlinks.track`.
CREATE TABLE downlinks (
    queue_item_id  uuid PRIMARY KEY,
    dev_eui        text NOT NULL,
    model_id       text NOT NULL,
    command        text NOT NULL,             -- the encoder's command name, e.g. switch
    params         jsonb NOT NULL DEFAULT '{}',
    f_port         integer NOT NULL CHECK (f_port BETWEEN 1 AND 223),
    data           bytea NOT NULL,
    confirmed      boolean NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'sent', 'acknowledged', 'not_acknowledged')),
    requested_by   text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,                -- txack
    gateway_id     text,                       -- the gateway that transmitted it
    f_cnt_down     bigint,
    acked_at       timestamptz,                -- ack (acknowledged or not)
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX downlinks_device_idx ON downlinks (dev_eui, requested_at DESC);
-- Open downlinks: waiting for a txack, or (confirmed ones) for an ack.
CREATE INDEX downlinks_open_idx ON downlinks (dev_eui, requested_at)
    WHERE sent_at IS NULL OR (confirmed AND acked_at IS NULL);

-- The writer role records downlinks and may track them from ingestion.
DO $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON downlinks TO %I',
                   regexp_replace(current_user, '_owner$', '_writer'));
END $$;
