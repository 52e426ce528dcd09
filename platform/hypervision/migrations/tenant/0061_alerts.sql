-- Alerts of a member and their notifications (hypervision.alerts; see
-- platform/hypervision/alerts/README.md).

-- One row per alert: opened by the evaluation job when a rule's condition holds, then
-- acknowledged by a person, then closed (by a person, or by the job when the condition
-- no longer holds). At most one alert per rule and device is not closed: the partial
-- unique index makes opening idempotent, so a condition that keeps holding neither opens
-- a second alert nor notifies again. A person closing an alert ends it for the episode:
-- the rule opens a new one only after the condition has been seen clear (cleared_at).
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    rule             text NOT NULL,
    dev_eui          text NOT NULL,
    condition        text NOT NULL CHECK (condition IN ('above', 'below', 'silent', 'leak')),
    metric           text,
    threshold        double precision,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state            text NOT NULL DEFAULT 'open'
                         CHECK (state IN ('open', 'acknowledged', 'closed')),
    message          text NOT NULL,
    value            double precision,          -- the value that opened it, if any
    since            timestamptz NOT NULL,      -- when the condition began to hold
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_value       double precision,
    checked_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    closed_at        timestamptz,
    closed_by        text,
    close_reason     text,
    -- When the condition was last seen clear after the alert closed: until then, an alert a
    -- person closed keeps its episode from opening a new alert.
    cleared_at       timestamptz,
    rule_spec        jsonb NOT NULL,
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (rule, dev_eui) WHERE state <> 'closed';
CREATE INDEX alerts_opened_idx ON alerts (opened_at DESC);

-- The notifications an alert owes, written in the same transaction that opens it (an
-- outbox): delivery claims a due row with a conditional UPDATE, sends, and records the
-- outcome; a failed attempt is retried later with backoff, up to a number of attempts.
CREATE TABLE alert_notifications (
    id               bigserial PRIMARY KEY,
    alert_id         bigint NOT NULL REFERENCES alerts (id),
    event            text NOT NULL DEFAULT 'opened',
    channel          text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target           text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (alert_id, event, channel, target)
);
CREATE INDEX alert_notifications_due_idx ON alert_notifications (next_attempt_at)
    WHERE state = 'pending';
