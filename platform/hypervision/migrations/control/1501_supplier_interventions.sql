-- Intervention requests to the network's suppliers, opened on an incident
-- (hypervision.syndicate.suppliers; docs/syndicate.md, "Suppliers and SLAs"). The promise
-- (hours from notification to arrival) is copied from network/suppliers.yaml when the
-- request is made, so that a later change of the file does not rewrite past quarters.
CREATE TABLE hv.interventions (
    id              bigserial PRIMARY KEY,
    incident_id     bigint NOT NULL REFERENCES hv.incidents (id),
    supplier        text NOT NULL,
    brick           text NOT NULL CHECK (brick IN ('core-network', 'hypervision',
                                                   'radio-network', 'sensors')),
    promised_hours  double precision NOT NULL CHECK (promised_hours > 0),
    notified_at     timestamptz NOT NULL,
    arrived_at      timestamptz,
    resolved_at     timestamptz,
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (arrived_at IS NULL OR arrived_at >= notified_at),
    CHECK (resolved_at IS NULL OR (arrived_at IS NOT NULL AND resolved_at >= arrived_at))
);
CREATE INDEX interventions_supplier_idx ON hv.interventions (supplier, notified_at);
