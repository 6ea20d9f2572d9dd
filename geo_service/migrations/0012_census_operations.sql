-- Census field operations (issue #24): users sign in with a password and get tokens that
-- expire and can be revoked; EAs carry field attributes; line layers (roads, rivers,
-- railways) guide delineation; staff, supervisor areas and assignments organise the work.

-- ---- users: passwords and tokens ----

-- A password hash (argon2id, encoded with its parameters and salt); NULL: no password
-- sign-in for this user (tokens only, as the command line makes them).
ALTER TABLE app_user ADD COLUMN password_hash text;
ALTER TABLE app_user ADD COLUMN password_changed_at timestamptz;

-- Tokens of a user: many at once (one per device or sign-in), each with an expiry and a
-- revocation. Only the SHA-256 of a token is stored.
CREATE TABLE app_token (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name   text NOT NULL REFERENCES app_user (name) ON UPDATE CASCADE ON DELETE CASCADE,
    token_hash  text NOT NULL UNIQUE,
    label       text NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,              -- NULL: does not expire (tokens made by the CLI)
    revoked_at  timestamptz,
    revoked_by  text
);
CREATE INDEX app_token_user_idx ON app_token (user_name);

-- The tokens users had keep working: they become the users' first tokens.
INSERT INTO app_token (user_name, token_hash, label)
SELECT name, token_hash, 'command line' FROM app_user;
ALTER TABLE app_user DROP COLUMN token_hash;

-- ---- EA field attributes ----

ALTER TABLE enumeration_area
    ADD COLUMN urban_rural text CHECK (urban_rural IN ('urban', 'rural')),
    ADD COLUMN boundary_description text CHECK (length(boundary_description) <= 2000),
    ADD COLUMN landmarks text CHECK (length(landmarks) <= 2000),
    -- from field listing (uploaded by EA code), beside the raster estimate
    ADD COLUMN listed_dwellings integer CHECK (listed_dwellings >= 0),
    ADD COLUMN listed_households integer CHECK (listed_households >= 0),
    ADD COLUMN listed_at timestamptz;

-- A history entry may now restore an earlier version.
ALTER TABLE ea_history DROP CONSTRAINT ea_history_action_check;
ALTER TABLE ea_history ADD CONSTRAINT ea_history_action_check
    CHECK (action IN ('create', 'update', 'delete', 'split', 'merge', 'submit', 'approve',
                      'reject', 'generate', 'restore', 'attributes', 'listing'));
CREATE INDEX ea_history_reject_idx ON ea_history (ea_id, id) WHERE action = 'reject';

-- ---- visible features: lines that EA boundaries should follow ----

CREATE TABLE ea_line (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind    text NOT NULL CHECK (kind IN ('road', 'river', 'railway')),
    name    text,
    source  text NOT NULL,                 -- the file it came from
    geom    geometry(MultiLineString, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom))
);
CREATE INDEX ea_line_geom_idx ON ea_line USING gist (geom);

-- ---- census organisation ----

-- People in the field: enumerators and supervisors (not necessarily users of the service).
CREATE TABLE census_staff (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    census_round text NOT NULL CHECK (census_round ~ '^[0-9]{4}$'),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('enumerator', 'supervisor')),
    -- where they work: a province (2-digit) or commune (5-digit) code
    scope       text NOT NULL CHECK (scope ~ '^([0-9]{2}|[0-9]{5})$'),
    phone       text CHECK (length(phone) <= 40),
    user_name   text REFERENCES app_user (name) ON UPDATE CASCADE ON DELETE SET NULL,
    UNIQUE (census_round, code)
);

-- Contiguous groups of EAs inside one commune, each under one supervisor.
CREATE TABLE supervisor_area (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    census_round    text NOT NULL CHECK (census_round ~ '^[0-9]{4}$'),
    commune_vintage text NOT NULL,
    commune_code    text NOT NULL,
    code            text NOT NULL,          -- commune code + '-S' + serial
    supervisor_id   bigint REFERENCES census_staff (id) ON DELETE SET NULL,
    updated_by      text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (census_round, code)
);

-- Which supervisor area an EA is in, and which enumerator covers it (one row per EA that
-- has either). Kept apart from the EA row: organising the work does not change the EA's
-- version, so it never makes a cartographer's edit stale.
CREATE TABLE ea_assignment (
    ea_id              bigint PRIMARY KEY REFERENCES enumeration_area (id) ON DELETE CASCADE,
    supervisor_area_id bigint REFERENCES supervisor_area (id) ON DELETE SET NULL,
    enumerator_id      bigint REFERENCES census_staff (id) ON DELETE SET NULL,
    updated_by         text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ea_assignment_area_idx ON ea_assignment (supervisor_area_id);
CREATE INDEX ea_assignment_enumerator_idx ON ea_assignment (enumerator_id);

-- The service's role administers users and tokens (the admin page, sign-in) and organises
-- the census; it still cannot change the schema.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        GRANT INSERT, UPDATE ON app_user TO geo_service_app;
        GRANT INSERT, UPDATE ON app_token TO geo_service_app;
        GRANT INSERT, UPDATE, DELETE ON census_staff, supervisor_area, ea_assignment
            TO geo_service_app;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO geo_service_app;
    END IF;
END $$;
