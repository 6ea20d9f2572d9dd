-- Vector tiles: a Web Mercator copy of the generalised geometries, and change tracking so that
-- every service instance can drop exactly the tiles a committed change affects.

ALTER TABLE admin_unit_generalised
    ADD COLUMN geom_3857 geometry(MultiPolygon, 3857)
    GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED;
CREATE INDEX admin_unit_generalised_3857_idx ON admin_unit_generalised USING gist (geom_3857);

-- One counter for all changes; updating its row serialises writers' commits, so a reader
-- that sees epoch N has seen every change up to N.
CREATE TABLE tile_epoch (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch bigint NOT NULL
);
INSERT INTO tile_epoch VALUES (true, 0);

-- layer = collection id; bbox NULL = the whole layer (e.g. indicator values changed).
CREATE TABLE tile_change (
    epoch      bigint NOT NULL,
    layer      text NOT NULL,
    bbox       geometry(Polygon, 4326),
    reason     text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tile_change_epoch_idx ON tile_change (epoch);

CREATE FUNCTION record_tile_change(p_layer text, p_bbox geometry, p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    new_epoch bigint;
BEGIN
    UPDATE tile_epoch SET epoch = epoch + 1 RETURNING epoch INTO new_epoch;
    INSERT INTO tile_change (epoch, layer, bbox, reason)
    VALUES (new_epoch, p_layer,
            CASE WHEN p_bbox IS NULL OR ST_IsEmpty(p_bbox) THEN NULL
                 ELSE ST_SetSRID(ST_Envelope(ST_Expand(p_bbox, 1e-9)), 4326)::geometry(Polygon, 4326)
            END,
            p_reason);
    PERFORM pg_notify('tile_change', new_epoch::text);
END $$;

-- Boundaries: the extent of the old and new geometries, per collection. Transition tables
-- allow only one event per trigger, hence three functions.

CREATE FUNCTION admin_unit_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit insert')
    FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox FROM new_rows
          GROUP BY vintage, level) c;
    RETURN NULL;
END $$;

CREATE FUNCTION admin_unit_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit delete')
    FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox FROM old_rows
          GROUP BY vintage, level) c;
    RETURN NULL;
END $$;

CREATE FUNCTION admin_unit_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit update')
    FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox
          FROM (SELECT vintage, level, geom FROM old_rows
                UNION ALL SELECT vintage, level, geom FROM new_rows) both_sides
          GROUP BY vintage, level) c;
    RETURN NULL;
END $$;

CREATE TRIGGER admin_unit_tiles_insert AFTER INSERT ON admin_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION admin_unit_after_insert();
CREATE TRIGGER admin_unit_tiles_delete AFTER DELETE ON admin_unit
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION admin_unit_after_delete();
CREATE TRIGGER admin_unit_tiles_update AFTER UPDATE ON admin_unit
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION admin_unit_after_update();

-- A geometry edited with plain SQL: regenerate its generalised rows so tiles follow. The
-- loader writes coverage-simplified bands itself and switches this off for its session.
CREATE FUNCTION admin_unit_regeneralise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('geo_service.loading', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.geom IS NOT DISTINCT FROM OLD.geom
       AND NEW.code = OLD.code THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM admin_unit_generalised
        WHERE vintage = OLD.vintage AND level = OLD.level AND code = OLD.code;
    END IF;
    INSERT INTO admin_unit_generalised (vintage, level, code, band, geom)
    SELECT NEW.vintage, NEW.level, NEW.code, z.band,
           CASE WHEN z.tolerance = 0 THEN NEW.geom
                ELSE coalesce(ST_Multi(ST_CollectionExtract(
                         ST_MakeValid(ST_SimplifyPreserveTopology(NEW.geom, z.tolerance)), 3)),
                              NEW.geom) END
    FROM zoom_band z
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER admin_unit_regeneralise AFTER INSERT OR UPDATE ON admin_unit
    FOR EACH ROW EXECUTE FUNCTION admin_unit_regeneralise();

-- Indicator values: tiles of the layer carrying them (the whole layer).
CREATE FUNCTION indicator_value_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM record_tile_change(level || '-' || vintage, NULL,
                                   'indicator ' || string_agg(DISTINCT indicator, ','))
        FROM new_rows GROUP BY vintage, level;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM record_tile_change(level || '-' || vintage, NULL,
                                   'indicator ' || string_agg(DISTINCT indicator, ','))
        FROM old_rows GROUP BY vintage, level;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER indicator_value_tiles_insert AFTER INSERT ON indicator_value
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_after_change();
CREATE TRIGGER indicator_value_tiles_delete AFTER DELETE ON indicator_value
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_after_change();
CREATE TRIGGER indicator_value_tiles_update AFTER UPDATE ON indicator_value
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_after_change();

-- The catalogue's disclosure rules change what tiles show too.
CREATE FUNCTION indicator_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change(s.level || '-' || s.vintage, NULL, 'indicator ' || n.code)
    FROM new_rows n JOIN indicator_series s ON s.indicator = n.code;
    RETURN NULL;
END $$;

CREATE TRIGGER indicator_tiles_update AFTER UPDATE ON indicator
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_after_update();
