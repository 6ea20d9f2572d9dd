-- Users with roles and scopes, enumeration areas with versions, and their full history.

-- EAs nest in the communes' cleaned coverage (no overlaps or gaps between communes), which
-- is the unsimplified band of the generalised geometries.
CREATE VIEW commune_coverage AS
SELECT g.vintage, g.code, g.geom
FROM admin_unit_generalised g JOIN zoom_band z ON z.band = g.band AND z.tolerance = 0
WHERE g.level = 'commune';

CREATE TABLE app_user (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role       text NOT NULL CHECK (role IN ('viewer', 'editor', 'supervisor', 'admin')),
    -- province (2-digit) or commune (5-digit) codes the user may edit; admins need none
    scope      text[] NOT NULL DEFAULT '{}',
    token_hash text NOT NULL UNIQUE,   -- SHA-256 of the token; the token itself is never stored
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE enumeration_area (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    census_round   text NOT NULL CHECK (census_round ~ '^[0-9]{4}$'),
    code           text NOT NULL,                 -- commune code + '-' + 3-digit serial
    commune_vintage text NOT NULL,
    commune_level  text NOT NULL DEFAULT 'commune' CHECK (commune_level = 'commune'),
    commune_code   text NOT NULL,
    status         text NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'submitted', 'approved', 'rejected')),
    population     double precision CHECK (population IS NULL OR population >= 0),
    households     double precision CHECK (households IS NULL OR households >= 0),
    version        integer NOT NULL DEFAULT 1,
    geom           geometry(MultiPolygon, 4326) NOT NULL
                   CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    updated_by     text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (census_round, code),
    FOREIGN KEY (commune_vintage, commune_level, commune_code) REFERENCES admin_unit
);
CREATE INDEX enumeration_area_geom_idx ON enumeration_area USING gist (geom);
CREATE INDEX enumeration_area_commune_idx
    ON enumeration_area (census_round, commune_vintage, commune_code);

-- Every change, with the whole state before and after (NULL for create / delete).
CREATE TABLE ea_history (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ea_id     bigint NOT NULL,
    action    text NOT NULL CHECK (action IN ('create', 'update', 'delete', 'split', 'merge',
                                              'submit', 'approve', 'reject', 'generate')),
    before    jsonb,
    after     jsonb,
    user_name text NOT NULL,
    reason    text,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ea_history_ea_idx ON ea_history (ea_id, id);

-- Tiles of the EA layer follow every committed change, as for boundaries.
CREATE FUNCTION enumeration_area_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change('enumeration-areas', ST_Extent(geom)::geometry, 'ea insert')
    FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION enumeration_area_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change('enumeration-areas', ST_Extent(geom)::geometry, 'ea delete')
    FROM old_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION enumeration_area_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change('enumeration-areas', ST_Extent(geom)::geometry, 'ea update')
    FROM (SELECT geom FROM old_rows UNION ALL SELECT geom FROM new_rows) both_sides
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER enumeration_area_tiles_insert AFTER INSERT ON enumeration_area
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION enumeration_area_after_insert();
CREATE TRIGGER enumeration_area_tiles_delete AFTER DELETE ON enumeration_area
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION enumeration_area_after_delete();
CREATE TRIGGER enumeration_area_tiles_update AFTER UPDATE ON enumeration_area
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION enumeration_area_after_update();
