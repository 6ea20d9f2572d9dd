-- EA geometry stored per zoom for z10–z12 too (#25), as 0022/0023 store it for z5–z8.
--
-- The harness's EA tiles are mostly z10–z12 (98 of 110 over Hà Nội), and there each tile
-- simplified every EA it holds and gave it to ST_AsMVTGeom (clip, snap, validate through
-- GEOS): two thirds of such a tile's database CPU. With the EA stored snapped to the grid of
-- half a pixel of the zoom (the tolerance those tiles simplified to), valid and without
-- collinear vertices, an EA wholly inside a tile is only mapped onto the tile's integer grid,
-- as at z5–z8; only the EAs crossing the tile's edge are still clipped.
--
-- z12 is snapped from the EA itself, z10 and z11 from the z12 copy (fewer vertices: a vertex
-- moves at most half a z12 grid step further, a quarter of a z11 one); a vertex two
-- neighbours share is snapped alike at every zoom, so neighbours keep sharing their edges.
-- An EA that collapses on a zoom's grid is the tile-grid cell its point on surface lies in,
-- as at z5–z8. Deeper zooms (z13+, where the editor works) still simplify per tile.
--
-- Written by 0023's trigger, now computing seven bands: one more snap of the EA and two of
-- its few z12 vertices a write (tens of microseconds; bench/README.md, "EA bands z10–z12").

ALTER TABLE enumeration_area
    ADD COLUMN geom_z10 geometry(MultiPolygon, 3857),
    ADD COLUMN geom_z11 geometry(MultiPolygon, 3857),
    ADD COLUMN geom_z12 geometry(MultiPolygon, 3857);

-- 0023's rule, extended: z12 from the EA, z10 and z11 from z12 (collapsed: the EA's cell).
CREATE OR REPLACE FUNCTION ea_band_geometry(p_geom geometry, p_zoom integer)
RETURNS geometry(MultiPolygon, 3857) LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = public, pg_temp
RETURN (SELECT coalesce(CASE WHEN p_zoom IN (8, 12) THEN ea_band_snapped(m, p_zoom)
                             WHEN p_zoom > 8 THEN ea_band_snapped(ea_band_snapped(m, 12), p_zoom)
                             ELSE ea_band_snapped(ea_band_snapped(m, 8), p_zoom) END,
                        ea_band_cell(ST_PointOnSurface(m), p_zoom))
        FROM ST_Transform(p_geom, 3857) m);

CREATE OR REPLACE FUNCTION enumeration_area_bands() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_temp AS $$
DECLARE
    mercator geometry := ST_Transform(NEW.geom, 3857);
    point geometry;  -- looked for at the first zoom where the EA collapses, reused
BEGIN
    NEW.geom_z12 := ea_band_snapped(mercator, 12);
    IF NEW.geom_z12 IS NULL THEN
        point := ST_PointOnSurface(mercator);
        NEW.geom_z12 := ea_band_cell(point, 12);
        NEW.geom_z11 := ea_band_cell(point, 11);
        NEW.geom_z10 := ea_band_cell(point, 10);
    ELSE
        NEW.geom_z11 := ea_band_snapped(NEW.geom_z12, 11);
        IF NEW.geom_z11 IS NULL THEN
            point := ST_PointOnSurface(mercator);
            NEW.geom_z11 := ea_band_cell(point, 11);
        END IF;
        NEW.geom_z10 := ea_band_snapped(NEW.geom_z12, 10);
        IF NEW.geom_z10 IS NULL THEN
            point := coalesce(point, ST_PointOnSurface(mercator));
            NEW.geom_z10 := ea_band_cell(point, 10);
        END IF;
    END IF;
    NEW.geom_z8 := ea_band_snapped(mercator, 8);
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

DROP TRIGGER enumeration_area_bands ON enumeration_area;
CREATE TRIGGER enumeration_area_bands
    BEFORE INSERT OR UPDATE OF geom, geom_z5, geom_z6, geom_z7, geom_z8,
                               geom_z10, geom_z11, geom_z12 ON enumeration_area
    FOR EACH ROW EXECUTE FUNCTION enumeration_area_bands();
ALTER TABLE enumeration_area ENABLE ALWAYS TRIGGER enumeration_area_bands;

-- Every stored EA's new bands (naming a band column in SET fires the trigger).
UPDATE enumeration_area SET geom_z12 = NULL;
