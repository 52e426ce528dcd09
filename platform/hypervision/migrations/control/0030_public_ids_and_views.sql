-- Transparency (the public pages, platform/hypervision/public/README.md): a public id per device, and the only views the public pages read.
--
-- The public id is what a device's QR code points to (<public_base_url>/d/<public_id>).
-- It is random, not derived from the DevEUI nor from a key, so that it says nothing about
-- the device and stays the same when HV_SECRET_KEY is rotated: printed labels keep
-- working. Existing devices get one each when this runs (a volatile default is evaluated
-- per row), new ones when tenancy inserts them; updates never touch it.
ALTER TABLE hv.devices ADD COLUMN public_id text NOT NULL UNIQUE
    DEFAULT left(encode(sha256(uuid_send(gen_random_uuid())), 'hex'), 16)
    CHECK (public_id ~ '^[0-9a-z]{8,64}$');

-- What a citizen may read about a device: never its DevEUI, variables or readings, and no
-- address for classes that could point to a household (water meters).
CREATE VIEW hv.public_devices AS
SELECT d.public_id,
       d.member_slug,
       d.name,
       d.active,
       d.model_id,
       dm.vendor,
       dm.model,
       dm.category,
       coalesce(dm.spec->>'description', '') AS model_description,
       -- Each metric once, in the order the model file declares them.
       ARRAY(SELECT x.value->>'metric'
             FROM jsonb_array_elements(dm.spec->'metrics') WITH ORDINALITY x(value, n)
             GROUP BY 1 ORDER BY min(x.n)) AS metrics,
       coalesce(d.spec->>'data_class', 'technical') AS data_class,
       coalesce(d.spec->>'purpose', '') AS purpose,
       coalesce(d.spec->>'public_description', '') AS public_description,
       (d.spec->>'installed_on')::date AS installed_on,
       CASE WHEN d.spec->>'data_class' = 'water-consumption' THEN NULL
            ELSE d.spec->'location'->>'address' END AS address,
       CASE WHEN d.spec->>'data_class' = 'water-consumption' THEN NULL
            ELSE d.spec->'location'->>'building' END AS building,
       -- Fields proposed for tenancy/spec.py; NULL until the spec declares them.
       d.spec->>'legal_basis' AS legal_basis,
       d.spec->>'area' AS area
FROM hv.devices d
JOIN hv.device_models dm ON dm.id = d.model_id;

-- What a citizen may read about a member: identity, DPO (whose contact details must be
-- published, GDPR art. 37.7), retention and recipients. Never its users.
CREATE VIEW hv.public_members AS
SELECT m.slug,
       m.name,
       m.kind,
       m.siren,
       m.suspended,
       m.spec->'contacts'->'dpo' AS dpo,
       coalesce(m.spec->'retention', '{}'::jsonb) AS retention,
       coalesce(
           (SELECT jsonb_agg(jsonb_build_object(
                       'name', r->>'name',
                       'third_party', coalesce((r->>'third_party')::boolean, true)))
            FROM jsonb_array_elements(m.spec->'export_recipients') r),
           '[]'::jsonb) AS recipients,
       -- Proposed for tenancy/spec.py (legal basis per data class); NULL until declared.
       m.spec->'legal_bases' AS legal_bases
FROM hv.members m;
