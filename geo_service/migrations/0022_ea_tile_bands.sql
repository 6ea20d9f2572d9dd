-- Low-zoom EA tiles (issue #25): every enumeration area in every tile, with geometry
-- generalised once per zoom z5–z8 instead of for every tile.
--
-- At z5–z8 an EA is a few screen pixels or less (a z7 tile over Hà Nội holds its 20,088
-- EAs), and simplifying each EA for each tile was most of a tile's cost. Each of these
-- zooms gets a copy of the geometry in Web Mercator snapped to a grid of half a screen
-- pixel of that zoom (8 cells of the 4096-cell tile grid, from the world's west and
-- south edges, so every grid point is also a point of ST_AsMVTGeom's grid and the tile
-- rounds nothing again), with collinear vertices dropped. Snapping to one grid moves a
-- vertex shared by two neighbours to the same point for both, so neighbouring EAs keep
-- sharing their edges: no gap or overlap appears between them (PostGIS 3.3 here has no
-- ST_CoverageSimplify). An EA that collapses on that grid (smaller than half a pixel)
-- becomes the one cell of the tile grid (1/16 of a pixel) its point on surface lies in, as
-- a tile draws a unit too small to draw: it is still there, to count and to click, and
-- tiles need not look for that point each time (most of Hà Nội's EAs at z5–z7).
--
-- Stored generated columns, like geom_3857 (0020): kept in step with every write however
-- it comes (the editor's save, split and merge, the generator's bulk inserts, plain SQL),
-- and nothing can bypass them. A write computes four more small geometries.

CREATE FUNCTION ea_band_geometry(p_geom geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
-- (a generated column is computed when a dump is restored too, with an empty search_path)
SET search_path = public, pg_temp AS $$
DECLARE
    mercator geometry := ST_Transform(p_geom, 3857);
    cell double precision := 40075016.68557849 / (1 << p_zoom) / 4096;  -- of the tile grid
    grid double precision := 8 * cell;  -- half a screen pixel of a 256-pixel tile
    snapped geometry;
    point geometry;
BEGIN
    snapped := ST_Simplify(ST_SnapToGrid(mercator, -20037508.342789244, -20037508.342789244,
                                         grid, grid),
                           0);
    IF snapped IS NOT NULL AND NOT ST_IsEmpty(snapped)
       AND NOT (ST_IsValidDetail(snapped)).valid THEN  -- (ST_IsValid would log each reason)
        snapped := ST_CollectionExtract(ST_MakeValid(snapped, 'method=structure'), 3);
    END IF;
    IF snapped IS NOT NULL AND NOT ST_IsEmpty(snapped) AND ST_Area(snapped) > 0 THEN
        RETURN ST_Multi(snapped);
    END IF;
    point := ST_PointOnSurface(mercator);
    RETURN ST_Multi(ST_MakeEnvelope(
        -20037508.342789244 + floor((ST_X(point) + 20037508.342789244) / cell) * cell,
        -20037508.342789244 + floor((ST_Y(point) + 20037508.342789244) / cell) * cell,
        -20037508.342789244 + (floor((ST_X(point) + 20037508.342789244) / cell) + 1) * cell,
        -20037508.342789244 + (floor((ST_Y(point) + 20037508.342789244) / cell) + 1) * cell,
        3857));
END $$;

ALTER TABLE enumeration_area
    ADD COLUMN geom_z5 geometry(MultiPolygon, 3857) GENERATED ALWAYS AS (ea_band_geometry(geom, 5)) STORED,
    ADD COLUMN geom_z6 geometry(MultiPolygon, 3857) GENERATED ALWAYS AS (ea_band_geometry(geom, 6)) STORED,
    ADD COLUMN geom_z7 geometry(MultiPolygon, 3857) GENERATED ALWAYS AS (ea_band_geometry(geom, 7)) STORED,
    ADD COLUMN geom_z8 geometry(MultiPolygon, 3857) GENERATED ALWAYS AS (ea_band_geometry(geom, 8)) STORED;
