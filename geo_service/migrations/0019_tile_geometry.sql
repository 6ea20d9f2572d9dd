-- The cold tile path (issue #25): each band's geometry stored as a tile draws it, in Web
-- Mercator and, for a band of one zoom, snapped to that zoom's tile grid, with a spatial
-- index per band, so a tile is a box search on its band and ST_AsMVTGeom on light geometry
-- (no ST_Transform per tile).
--
-- ST_AsMVTGeom rounds every vertex to the grid of the tile (4096 cells a tile, one grid for
-- every tile of a zoom) and drops repeated points: snapping to that grid in advance is
-- exact for a band drawn at one zoom only (z4–z8, where tiles are heaviest). A band drawn
-- at several zooms (z0–3, z9–11, z12+) is only transformed: snapped to its deepest zoom's
-- grid, the shallower zooms' tiles would round twice, and a unit that barely reaches into
-- a tile's buffer could come or go. Snapping moves shared vertices alike, so neighbours
-- keep sharing their edges; a unit smaller than a cell keeps its unsnapped shape (a tile
-- draws it as the cell it lies in).

CREATE FUNCTION tile_geometry(p_geom geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    mercator geometry := ST_Transform(p_geom, 3857);
    cell double precision;
    snapped geometry;
BEGIN
    IF p_zoom IS NULL THEN
        RETURN ST_Multi(mercator);
    END IF;
    -- a cell of the tile grid at this zoom (4096 to a tile), from the world's west edge
    cell := 40075016.68557849 / (1 << p_zoom) / 4096;
    snapped := ST_SnapToGrid(mercator, -20037508.342789244, -20037508.342789244, cell, cell);
    IF snapped IS NULL OR ST_IsEmpty(snapped) THEN
        RETURN ST_Multi(mercator);
    END IF;
    IF NOT (ST_IsValidDetail(snapped)).valid THEN  -- (ST_IsValid would log each reason)
        snapped := ST_CollectionExtract(ST_MakeValid(snapped, 'method=structure'), 3);
        IF ST_IsEmpty(snapped) THEN
            RETURN ST_Multi(mercator);
        END IF;
    END IF;
    RETURN ST_Multi(snapped);
END $$;

-- The zoom a band is snapped to: its only zoom, or none for a band of several.
CREATE FUNCTION band_tile_zoom(p_band smallint) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT max_zoom FROM zoom_band WHERE band = p_band AND min_zoom = max_zoom
$$;

CREATE FUNCTION admin_unit_generalised_tile_geometry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.geom_3857 := tile_geometry(NEW.geom, band_tile_zoom(NEW.band));
    RETURN NEW;
END $$;

-- The generated column of 0003 (only transformed) becomes a plain one, rewritten once in
-- place (an UPDATE would leave the table twice its size); its index, over every band,
-- gives way to one per band (made by geo_service.migrate for the bands geo_core.zoom
-- defines, since a tile's band is part of its statement).
DROP INDEX admin_unit_generalised_3857_idx;
ALTER TABLE admin_unit_generalised ALTER COLUMN geom_3857 DROP EXPRESSION;
ALTER TABLE admin_unit_generalised ALTER COLUMN geom_3857 TYPE geometry(MultiPolygon, 3857)
    USING tile_geometry(geom, band_tile_zoom(band));
ALTER TABLE admin_unit_generalised ALTER COLUMN geom_3857 SET NOT NULL;

CREATE TRIGGER admin_unit_generalised_tile_geometry
    BEFORE INSERT OR UPDATE OF geom, band ON admin_unit_generalised
    FOR EACH ROW EXECUTE FUNCTION admin_unit_generalised_tile_geometry();
