-- The incident register of the syndicate and its members (hypervision.syndicate.incidents;
-- docs/syndicate.md, "Incidents and personal-data breaches").

-- One row per incident. member_slug NULL: an incident of the syndicate's shared service
-- itself. The legal clocks are computed from detected_at (NIS2, when `significant`) and
-- breach_known_at (GDPR, when a personal-data breach is known); filings are below.
-- auto_key: set for the incidents the platform opens itself (audit chain broken, backup
-- missing, ingestion stopped, export volume jump), so that a detector that keeps firing
-- opens one incident, not one a minute.
CREATE TABLE hv.incidents (
    id               bigserial PRIMARY KEY,
    member_slug      text REFERENCES hv.members (slug),
    title            text NOT NULL CHECK (length(title) > 0),
    description      text NOT NULL DEFAULT '',
    detected_at      timestamptz NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    significant      boolean NOT NULL DEFAULT false,
    systems          text[] NOT NULL DEFAULT '{}',
    members_affected text[] NOT NULL DEFAULT '{}',
    breach           boolean NOT NULL DEFAULT false,
    breach_known_at  timestamptz,
    breach_nature    text[] NOT NULL DEFAULT '{}'
                         CHECK (breach_nature <@ ARRAY['confidentiality', 'integrity',
                                                       'availability']),
    data_classes     text[] NOT NULL DEFAULT '{}',
    data_subjects    integer CHECK (data_subjects >= 0),
    malicious        boolean,
    cross_border     boolean NOT NULL DEFAULT false,
    actions          jsonb NOT NULL DEFAULT '[]',
    source           text NOT NULL DEFAULT 'manual',
    auto_key         text UNIQUE,
    state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    closed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT breach OR breach_known_at IS NOT NULL),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX incidents_member_idx ON hv.incidents (member_slug, detected_at DESC);

-- When each legal clock's report was sent (NIS2 early warning, notification, final
-- report; GDPR notification), with the authority's reference if any. A filed clock
-- stops alerting.
CREATE TABLE hv.incident_filings (
    incident_id  bigint NOT NULL REFERENCES hv.incidents (id),
    clock        text NOT NULL CHECK (clock IN ('nis2-early-warning', 'nis2-notification',
                                                'nis2-final-report', 'gdpr-notification')),
    filed_at     timestamptz NOT NULL,
    reference    text NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, clock)
);
