-- The cold EA tile path (issue #25): each enumeration area's geometry also in Web Mercator,
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
