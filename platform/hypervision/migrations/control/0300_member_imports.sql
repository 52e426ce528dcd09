-- Members created by importing an archive (hypervision.archive.import_member): importing
-- the same member's archive again into that slug is allowed (it adds nothing), while an
-- archive can never be imported into the slug of a member declared here otherwise.
CREATE TABLE hv.member_imports (
    member_slug    text NOT NULL REFERENCES hv.members (slug),
    source_member  text NOT NULL,
    fingerprint    text NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_slug, fingerprint)
);
