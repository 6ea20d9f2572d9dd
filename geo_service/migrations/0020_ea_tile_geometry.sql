-- The cold EA tile path, and indicator loads that leave geometry tiles alone (issue #25).
--
-- The cold EA tile path: each enumeration area's geometry also in Web Mercator,
-- with its own spatial index, so an EA tile is a box search and ST_AsMVTGeom with no
-- ST_Transform per tile. EAs change all day: a stored generated column keeps the copy up
-- to date on every write, whichever way it comes (the API, the generator, plain SQL, COPY).
--
-- Measured against a trigger-maintained column (BEFORE INSERT OR UPDATE OF geom) on 10,254
-- polygons, 3,000 single-row updates each (bench/README.md, "EA tiles: the Web Mercator
-- column"): the generated column was cheaper on inserts and geometry edits, the trigger on
-- updates that leave the geometry alone (a generated column is computed again on every
-- update of the row); all within 0.1 ms a write, so the column that no one can bypass
-- (a disabled trigger, a replica-mode session) is the one kept.

ALTER TABLE enumeration_area ADD COLUMN geom_3857 geometry(MultiPolygon, 3857)
    GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED;

CREATE INDEX enumeration_area_tile_idx ON enumeration_area USING gist (geom_3857);

-- Indicator values change without changing a unit's shape: the tiles that carry values
-- (`?indicator=`, `?properties=`) are stale, the geometry tiles the map draws (and nginx
-- serves, and the pre-render renders) are not. Such a change is marked `values_only`, and
-- the caches drop only the tiles that are not geometry-only (tilecache.freshness). The
-- value triggers (0003, 0006, 0011) all come through record_tile_change, with these
-- reasons; a truncated values table still changes every tile ('*').
ALTER TABLE tile_change ADD COLUMN values_only boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION record_tile_change(p_layer text, p_bbox geometry, p_reason text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    new_epoch bigint;
BEGIN
    UPDATE tile_epoch SET epoch = epoch + 1 RETURNING epoch INTO new_epoch;
    INSERT INTO tile_change (epoch, layer, bbox, reason, values_only)
    VALUES (new_epoch, p_layer,
            CASE WHEN p_bbox IS NULL OR ST_IsEmpty(p_bbox) THEN NULL
                 ELSE ST_SetSRID(ST_Envelope(ST_Expand(p_bbox, 1e-9)), 4326)::geometry(Polygon, 4326)
            END,
            p_reason,
            p_layer <> '*' AND (p_reason LIKE 'indicator %' OR p_reason IN ('suppression',
                                                                           'disclosure pending')));
    PERFORM pg_notify('tile_change', new_epoch::text);
END $$;
