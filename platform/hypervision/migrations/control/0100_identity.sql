-- One identity per person (platform/hypervision/accounts.py, mfa.py, sso.py,
-- superset/signin.py): what a person sets for themself lives here, never in tenant files.

-- 1. The second factor. `mfa_required` is copied from the tenant file (`mfa: required`);
--    admin rights and operators always need one. The TOTP secret (RFC 6238, base32) is
--    set once the person proved they hold it; `totp_last_step` refuses a code used twice.
ALTER TABLE hv.accounts
    ADD COLUMN mfa_required     boolean NOT NULL DEFAULT false,
    ADD COLUMN sso_subject      text,
    ADD COLUMN totp_secret      text,
    ADD COLUMN totp_enrolled_at timestamptz,
    ADD COLUMN totp_last_step   bigint;
CREATE UNIQUE INDEX accounts_sso_subject_idx ON hv.accounts (sso_subject)
    WHERE sso_subject IS NOT NULL;

-- Single-use recovery codes: only their SHA-256 is kept (64-bit random codes, tried
-- behind the login limiter).
CREATE TABLE hv.recovery_codes (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES hv.accounts (id),
    code_hash   bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX recovery_codes_account_idx ON hv.recovery_codes (account_id);

-- 2. Tokens know where they come from. `kind`: 'personal' (CLI, scripts), 'login' (the
--    API's /auth/login), 'session' (the console's cookie), 'superset' (Superset's sign-in
--    through the platform). A token made by another (`parent_id`) never outlives it nor
--    holds more rights, and is revoked with it. `mfa`: the sign-in passed a second factor.
ALTER TABLE hv.api_tokens
    ADD COLUMN kind      text NOT NULL DEFAULT 'personal'
                         CHECK (kind IN ('personal', 'login', 'session', 'superset')),
    ADD COLUMN parent_id bigint REFERENCES hv.api_tokens (id),
    ADD COLUMN mfa       boolean NOT NULL DEFAULT false,
    ADD COLUMN method    text NOT NULL DEFAULT 'token'
                         CHECK (method IN ('token', 'password', 'sso'));
UPDATE hv.api_tokens SET kind = 'login', method = 'password' WHERE label = 'login';
CREATE INDEX api_tokens_parent_idx ON hv.api_tokens (parent_id) WHERE parent_id IS NOT NULL;

-- 3. A sign-in half done: the password (or the identity provider) said yes, the second
--    factor (or its enrolment) is still to come. Single-use, short-lived, few attempts.
CREATE TABLE hv.auth_challenges (
    id           bigserial PRIMARY KEY,
    secret_hash  bytea NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
    account_id   bigint NOT NULL REFERENCES hv.accounts (id),
    purpose      text NOT NULL CHECK (purpose IN ('code', 'enrol')),
    method       text NOT NULL CHECK (method IN ('password', 'sso')),
    pending_totp text,
    sso_id_token text,
    attempts     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

-- 4. Single sign-on: an authorisation request in flight (state, nonce and PKCE verifier),
--    used once, and the ID token of a session, kept to end it at the provider on logout.
CREATE TABLE hv.sso_requests (
    state_hash    bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    next_path     text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE TABLE hv.sso_sessions (
    token_id  bigint PRIMARY KEY REFERENCES hv.api_tokens (id),
    subject   text NOT NULL,
    id_token  text NOT NULL
);

-- 5. Superset signs people in through the platform (OAuth 2 authorisation code): a code
--    names the console session it was issued from; it is exchanged once, within a minute.
CREATE TABLE hv.superset_codes (
    code_hash     bytea PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    token_id      bigint NOT NULL REFERENCES hv.api_tokens (id),
    redirect_uri  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

REVOKE ALL ON hv.recovery_codes, hv.auth_challenges, hv.sso_requests, hv.sso_sessions,
    hv.superset_codes FROM PUBLIC;
