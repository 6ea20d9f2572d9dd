-- Versioned administrative boundaries, their generalised geometries and crosswalks.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE vintage (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,32}$'),
    valid_from  date NOT NULL,
    valid_to    date CHECK (valid_to IS NULL OR valid_to > valid_from),  -- exclusive
    description text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT '',
    licence     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_level (
    id    text PRIMARY KEY,
    rank  smallint NOT NULL UNIQUE
);
INSERT INTO admin_level (id, rank) VALUES ('province', 1), ('district', 2), ('commune', 3);

CREATE TABLE admin_unit (
    vintage     text NOT NULL REFERENCES vintage (id),
    level       text NOT NULL REFERENCES admin_level (id),
    code        text NOT NULL CHECK (code <> ''),
    parent_code text,
    name        text NOT NULL,
    search_name text NOT NULL,
    unit_type   text,
    area_km2    double precision NOT NULL,
    geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vintage, level, code)
);
CREATE INDEX admin_unit_geom_idx ON admin_unit USING gist (geom);
CREATE INDEX admin_unit_parent_idx ON admin_unit (vintage, level, parent_code);
CREATE INDEX admin_unit_search_idx ON admin_unit USING gin (search_name gin_trgm_ops);

-- Zoom bands of the generalised geometries; tolerance in degrees (0 = cleaned, not simplified).
CREATE TABLE zoom_band (
    band       smallint PRIMARY KEY,
    min_zoom   smallint NOT NULL,
    max_zoom   smallint NOT NULL CHECK (max_zoom >= min_zoom),
    tolerance  double precision NOT NULL CHECK (tolerance >= 0)
);
INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES
    (0, 0, 5, 0.02),
    (1, 6, 8, 0.0025),
    (2, 9, 11, 0.0003),
    (3, 12, 24, 0);

CREATE TABLE admin_unit_generalised (
    vintage text NOT NULL,
    level   text NOT NULL,
    code    text NOT NULL,
    band    smallint NOT NULL REFERENCES zoom_band (band),
    geom    geometry(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (vintage, level, code, band),
    FOREIGN KEY (vintage, level, code) REFERENCES admin_unit ON DELETE CASCADE
);
CREATE INDEX admin_unit_generalised_geom_idx ON admin_unit_generalised USING gist (geom);

-- How units of one vintage map onto units of another (e.g. the 2025 reform).
-- area_share / population_share: the share of the *old* unit that lies in the new one.
CREATE TABLE crosswalk (
    from_vintage     text NOT NULL REFERENCES vintage (id),
    from_level       text NOT NULL REFERENCES admin_level (id),
    from_code        text NOT NULL,
    to_vintage       text NOT NULL REFERENCES vintage (id),
    to_level         text NOT NULL REFERENCES admin_level (id),
    to_code          text NOT NULL,
    relation         text NOT NULL CHECK (relation IN ('whole', 'partial')),
    area_share       double precision CHECK (area_share BETWEEN 0 AND 1),
    population_share double precision CHECK (population_share BETWEEN 0 AND 1),
    PRIMARY KEY (from_vintage, from_level, from_code, to_vintage, to_level, to_code),
    CHECK (relation = 'partial' OR area_share IS NULL OR area_share = 1)
);
CREATE INDEX crosswalk_to_idx ON crosswalk (to_vintage, to_level, to_code);
