-- The low-zoom EA geometry of 0022 written by a trigger, with half the computation (#25).
--
-- 0022's generated columns snapped every inserted EA four times, each time from the EA
-- itself (four Web Mercator transforms, four snaps of every vertex, up to four
-- point-on-surface searches): about 50 µs of database CPU an EA, 2.4× the cost of an EA
-- insert without them (bench/README.md, "EA band columns by trigger"). Now the bands are
-- plain columns written by a BEFORE trigger that transforms once, snaps the EA once (z8)
-- and the few vertices left for z5–z7: the computation takes half the CPU, an insert
-- 5–15 % less (the rest is the trigger call and writing four more geometries).
--
-- The trigger fires on INSERT and on an UPDATE whose SET list names `geom` (or a band
-- column itself, so a hand-written band is replaced by the computed one). An update that
-- leaves the geometry alone (status, attributes, assignment) computes nothing; so did the
-- generated columns (PostgreSQL 13+ recomputes a stored generated column only when a column
-- it depends on is in the SET list: measured, status-only updates cost the same with and
-- without them). It is ENABLE ALWAYS, so a session in replica mode
-- (session_replication_role, a logical replication apply worker) computes the bands too;
-- only ALTER TABLE … DISABLE TRIGGER by the table's owner skips it. geom_3857 (0020) stays
-- a generated column (one ST_Transform).
--
-- Bulk writers (the generator's COPY, INSERT … SELECT): nothing changes for them but the
-- cost; the bands are filled row by row as they are written. A statement-level trigger
-- computing them set-wise from the inserted rows was measured and is dearer (it writes
-- every row twice).

-- 0022's rule in two halves, so that the trigger transforms an EA and looks for its point
-- on surface once for all four zooms: the EA snapped to the zoom's grid (NULL when it
-- collapses), and the tile-grid cell of the zoom in which a point lies. (No SET
-- search_path of their own, unlike 0022's function: a SET costs every call, four a row;
-- their callers below set it once.)
CREATE FUNCTION ea_band_snapped(p_mercator geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cell double precision := 40075016.68557849 / (1 << p_zoom) / 4096;  -- of the tile grid
    grid double precision := 8 * cell;  -- half a screen pixel of a 256-pixel tile
    snapped geometry;
BEGIN
    snapped := ST_Simplify(ST_SnapToGrid(p_mercator, -20037508.342789244, -20037508.342789244,
                                         grid, grid),
                           0);
    IF snapped IS NOT NULL AND NOT ST_IsEmpty(snapped)
       AND NOT (ST_IsValidDetail(snapped)).valid THEN  -- (ST_IsValid would log each reason)
        snapped := ST_CollectionExtract(ST_MakeValid(snapped, 'method=structure'), 3);
    END IF;
    IF snapped IS NOT NULL AND NOT ST_IsEmpty(snapped) AND ST_Area(snapped) > 0 THEN
        RETURN ST_Multi(snapped);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ea_band_cell(p_point geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cell double precision := 40075016.68557849 / (1 << p_zoom) / 4096;  -- of the tile grid
BEGIN
    RETURN ST_Multi(ST_MakeEnvelope(
        -20037508.342789244 + floor((ST_X(p_point) + 20037508.342789244) / cell) * cell,
        -20037508.342789244 + floor((ST_Y(p_point) + 20037508.342789244) / cell) * cell,
        -20037508.342789244 + (floor((ST_X(p_point) + 20037508.342789244) / cell) + 1) * cell,
        -20037508.342789244 + (floor((ST_Y(p_point) + 20037508.342789244) / cell) + 1) * cell,
        3857));
END $$;

-- z8 is snapped from the EA itself, z5–z7 from the z8 copy (a few vertices where the EA
-- has hundreds: half the work of snapping the EA four times). A vertex moves at most
-- half a z8 grid step further than when snapped directly (an eighth of a pixel at z7, less
-- at z5 and z6); a vertex two neighbours share is still snapped alike at every zoom, so
-- neighbours keep their shared edges. An EA that collapses at z8 is its tile-grid cell at
-- every one of these zooms.
CREATE OR REPLACE FUNCTION ea_band_geometry(p_geom geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = public, pg_temp
RETURN (SELECT coalesce(CASE WHEN p_zoom >= 8 THEN ea_band_snapped(m, p_zoom)
                             ELSE ea_band_snapped(ea_band_snapped(m, 8), p_zoom) END,
                        ea_band_cell(ST_PointOnSurface(m), p_zoom))
        FROM ST_Transform(p_geom, 3857) m);

CREATE FUNCTION enumeration_area_bands() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
DECLARE
    mercator geometry := ST_Transform(NEW.geom, 3857);
    point geometry;  -- looked for at the first zoom where the EA collapses, reused
BEGIN
    NEW.geom_z8 := ea_band_snapped(mercator, 8);
    IF NEW.geom_z8 IS NULL THEN
        point := ST_PointOnSurface(mercator);
        NEW.geom_z8 := ea_band_cell(point, 8);
        NEW.geom_z7 := ea_band_cell(point, 7);
        NEW.geom_z6 := ea_band_cell(point, 6);
        NEW.geom_z5 := ea_band_cell(point, 5);
        RETURN NEW;
    END IF;
    NEW.geom_z7 := ea_band_snapped(NEW.geom_z8, 7);
    IF NEW.geom_z7 IS NULL THEN
        point := ST_PointOnSurface(mercator);
        NEW.geom_z7 := ea_band_cell(point, 7);
    END IF;
    NEW.geom_z6 := ea_band_snapped(NEW.geom_z8, 6);
    IF NEW.geom_z6 IS NULL THEN
        point := coalesce(point, ST_PointOnSurface(mercator));
        NEW.geom_z6 := ea_band_cell(point, 6);
    END IF;
    NEW.geom_z5 := ea_band_snapped(NEW.geom_z8, 5);
    IF NEW.geom_z5 IS NULL THEN
        NEW.geom_z5 := ea_band_cell(coalesce(point, ST_PointOnSurface(mercator)), 5);
    END IF;
    RETURN NEW;
END $$;

-- (DROP EXPRESSION keeps the stored values: no row is rewritten)
ALTER TABLE enumeration_area
    ALTER COLUMN geom_z5 DROP EXPRESSION,
    ALTER COLUMN geom_z6 DROP EXPRESSION,
    ALTER COLUMN geom_z7 DROP EXPRESSION,
    ALTER COLUMN geom_z8 DROP EXPRESSION;

CREATE TRIGGER enumeration_area_bands
    BEFORE INSERT OR UPDATE OF geom, geom_z5, geom_z6, geom_z7, geom_z8 ON enumeration_area
    FOR EACH ROW EXECUTE FUNCTION enumeration_area_bands();
ALTER TABLE enumeration_area ENABLE ALWAYS TRIGGER enumeration_area_bands;

-- Every stored EA's bands by the new rule: an EA kept from 0022 next to one written now
-- would not share its edges exactly. (Naming a band column in SET fires the trigger.)
UPDATE enumeration_area SET geom_z8 = NULL;
