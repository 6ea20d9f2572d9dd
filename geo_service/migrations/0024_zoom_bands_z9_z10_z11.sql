-- z9, z10 and z11 each drawn from geometry simplified for that zoom (issue #25), for units
-- and for enumeration areas.
--
-- Units: one band served z9–z11 at the tolerance of z11 (0.0003°), so a z9 tile carried
-- about four times the vertices it can show and a z10 tile twice. Now one band per zoom,
-- half a pixel of its zoom each (geo_core/zoom.py, the one definition), as 0017 did for
-- z4–z8; a band of one zoom is also snapped to its zoom's tile grid (0019). The finest band
-- (the cleaned coverage, which nothing stored can make again) moves from number 7 to 9;
-- the z9–z11 band is dropped, and geo_service.migrate makes bands 6, 7 and 8 again from the
-- finest in the same transaction (boundaries/rebuild.py), as a load would. The triggers
-- record the change, so every tile cache drops the tiles of the old bands.

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES (9, 12, 22, 0)
    ON CONFLICT (band) DO UPDATE SET min_zoom = 12, max_zoom = 22, tolerance = 0;

UPDATE admin_unit_generalised g SET band = 9
FROM zoom_band z
WHERE z.band = g.band AND z.tolerance = 0 AND g.band <> 9;

DELETE FROM admin_unit_generalised WHERE band IN (6, 7, 8);
DELETE FROM zoom_band WHERE band IN (6, 7, 8);

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES
    (6, 9, 9, 0.001375),
    (7, 10, 10, 0.0006875),
    (8, 11, 11, 0.00034375);

-- Enumeration areas: z9–z11 tiles simplified every EA for every tile (ST_Simplify, each EA
-- by itself, so two neighbours' shared edge could be simplified apart). Now they are
-- stored like z5–z8 (0022, 0023): snapped to half a pixel of their zoom, on a grid that is
-- a subset of the tile grid, neighbours' shared vertices snapped alike. The trigger snaps
-- the EA itself once, at z11, and every other zoom from a copy with fewer vertices: z9
-- and z10 from z11, z8 from z11, z5–z7 from z8 (a vertex moves at most half a z11 step
-- further at z8, 1/16 of a pixel). An EA that collapses at a zoom is the tile-grid cell of
-- its point on surface there, as before.

-- (IF NOT EXISTS: the band tests put a database back as 0016 left its units' bands, then
-- migrate it again)
ALTER TABLE enumeration_area
    ADD COLUMN IF NOT EXISTS geom_z9 geometry(MultiPolygon, 3857),
    ADD COLUMN IF NOT EXISTS geom_z10 geometry(MultiPolygon, 3857),
    ADD COLUMN IF NOT EXISTS geom_z11 geometry(MultiPolygon, 3857);

CREATE OR REPLACE FUNCTION ea_band_geometry(p_geom geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = public, pg_temp
RETURN (SELECT coalesce(CASE WHEN p_zoom >= 11 THEN ea_band_snapped(m, p_zoom)
                             WHEN p_zoom >= 8 THEN ea_band_snapped(ea_band_snapped(m, 11), p_zoom)
                             ELSE ea_band_snapped(ea_band_snapped(ea_band_snapped(m, 11), 8),
                                                  p_zoom) END,
                        ea_band_cell(ST_PointOnSurface(m), p_zoom))
        FROM ST_Transform(p_geom, 3857) m);

CREATE OR REPLACE FUNCTION enumeration_area_bands() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
DECLARE
    mercator geometry := ST_Transform(NEW.geom, 3857);
    point geometry;  -- looked for at the first zoom where the EA collapses, reused
BEGIN
    NEW.geom_z11 := ea_band_snapped(mercator, 11);
    IF NEW.geom_z11 IS NULL THEN  -- (smaller than half a z11 pixel: a cell at every zoom)
        point := ST_PointOnSurface(mercator);
        NEW.geom_z11 := ea_band_cell(point, 11);
        NEW.geom_z10 := ea_band_cell(point, 10);
        NEW.geom_z9 := ea_band_cell(point, 9);
        NEW.geom_z8 := ea_band_cell(point, 8);
        NEW.geom_z7 := ea_band_cell(point, 7);
        NEW.geom_z6 := ea_band_cell(point, 6);
        NEW.geom_z5 := ea_band_cell(point, 5);
        RETURN NEW;
    END IF;
    NEW.geom_z10 := ea_band_snapped(NEW.geom_z11, 10);
    IF NEW.geom_z10 IS NULL THEN
        point := coalesce(point, ST_PointOnSurface(mercator));
        NEW.geom_z10 := ea_band_cell(point, 10);
    END IF;
    NEW.geom_z9 := ea_band_snapped(NEW.geom_z11, 9);
    IF NEW.geom_z9 IS NULL THEN
        point := coalesce(point, ST_PointOnSurface(mercator));
        NEW.geom_z9 := ea_band_cell(point, 9);
    END IF;
    NEW.geom_z8 := ea_band_snapped(NEW.geom_z11, 8);
    IF NEW.geom_z8 IS NULL THEN
        point := coalesce(point, ST_PointOnSurface(mercator));
        NEW.geom_z8 := ea_band_cell(point, 8);
        NEW.geom_z7 := ea_band_cell(point, 7);
        NEW.geom_z6 := ea_band_cell(point, 6);
        NEW.geom_z5 := ea_band_cell(point, 5);
        RETURN NEW;
    END IF;
    NEW.geom_z7 := ea_band_snapped(NEW.geom_z8, 7);
    IF NEW.geom_z7 IS NULL THEN
        point := coalesce(point, ST_PointOnSurface(mercator));
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

DROP TRIGGER IF EXISTS enumeration_area_bands ON enumeration_area;
CREATE TRIGGER enumeration_area_bands
    BEFORE INSERT OR UPDATE OF geom, geom_z5, geom_z6, geom_z7, geom_z8, geom_z9, geom_z10,
                               geom_z11 ON enumeration_area
    FOR EACH ROW EXECUTE FUNCTION enumeration_area_bands();
ALTER TABLE enumeration_area ENABLE ALWAYS TRIGGER enumeration_area_bands;

-- Every stored EA's bands by the new rule (naming a band column in SET fires the trigger).
UPDATE enumeration_area SET geom_z11 = NULL;
