-- Reprocessing runs: re-decoding a member's stored raw uplinks after a codec change.
-- A run remembers how far it got (keyset position), so an interrupted run resumes.
CREATE TABLE hv.reprocess_runs (
    id           bigserial PRIMARY KEY,
    member_slug  text NOT NULL REFERENCES hv.members (slug),
    filters      jsonb NOT NULL,
    actor        text NOT NULL,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed')),
    total        bigint NOT NULL DEFAULT 0,
    done         bigint NOT NULL DEFAULT 0,
    last_time    timestamptz,
    last_id      uuid,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
