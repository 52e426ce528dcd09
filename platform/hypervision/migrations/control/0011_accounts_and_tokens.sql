-- Named personal accounts, API tokens and operators' access grants
-- (platform/hypervision/accounts.py; the API in platform/hypervision/api/).

-- One named person, belonging to one member. Declared under `users:` in
-- tenants/<slug>.yaml (declared = true) or created with `hypervision accounts create`.
-- `operator` is meaningful only for a member of kind 'syndicate': operators manage the
-- network across members, and read a member's personal data only under a grant.
CREATE TABLE hv.accounts (
    id             bigserial PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    name           text NOT NULL,
    member_slug    text NOT NULL REFERENCES hv.members (slug),
    rights         text[] NOT NULL DEFAULT '{read}'
                   CHECK (rights <@ ARRAY['read', 'export', 'admin']::text[]),
    operator       boolean NOT NULL DEFAULT false,
    -- argon2id (argon2-cffi); NULL: no password, the account uses tokens only.
    password_hash  text,
    active         boolean NOT NULL DEFAULT true,
    declared       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_member_idx ON hv.accounts (member_slug);

-- API tokens. Only the SHA-256 of the secret is kept (secrets are 256-bit random
-- strings, so a plain hash is enough). A token acts for one member with at most the
-- rights listed here, intersected at each use with its account's current rights.
CREATE TABLE hv.api_tokens (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES hv.accounts (id),
    member_slug   text NOT NULL REFERENCES hv.members (slug),
    rights        text[] NOT NULL CHECK (rights <@ ARRAY['read', 'export', 'admin']::text[]),
    label         text NOT NULL DEFAULT '',
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_account_idx ON hv.api_tokens (account_id);
CREATE INDEX api_tokens_member_idx ON hv.api_tokens (member_slug);

-- An operator's explicit, time-limited right to read one member's personal data
-- (measurements of personal data classes, raw uplinks, exports).
CREATE TABLE hv.access_grants (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES hv.accounts (id),
    member_slug  text NOT NULL REFERENCES hv.members (slug),
    reason       text NOT NULL CHECK (length(btrim(reason)) >= 3),
    starts_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    revoked_at   timestamptz,
    revoked_by   text,
    CHECK (expires_at > starts_at)
);
CREATE INDEX access_grants_lookup_idx ON hv.access_grants (account_id, member_slug, expires_at);

-- Storage used per member, measured once a day by the usage job (hypervision.jobs.usage):
-- what cost sharing needs besides the ingestion counters of hv.ingest_outcomes.
CREATE TABLE hv.storage_usage (
    day          date NOT NULL,
    member_slug  text NOT NULL REFERENCES hv.members (slug),
    bytes        bigint NOT NULL,
    measured_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, member_slug)
);

REVOKE ALL ON hv.accounts, hv.api_tokens, hv.access_grants, hv.storage_usage FROM PUBLIC;
