-- Tiles are drawn from the generalised geometries: a change made to them directly (plain
-- SQL, a repair) makes the tiles over both the old and the new shapes stale too. A load
-- writes bands beside the units it also writes (geo_service.loading = 'on'), whose own
-- triggers record the change already.

CREATE FUNCTION admin_unit_generalised_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('geo_service.loading', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit_generalised')
        FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox FROM new_rows
              GROUP BY vintage, level) c;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit_generalised')
        FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox FROM old_rows
              GROUP BY vintage, level) c;
    ELSE
        PERFORM record_tile_change(level || '-' || vintage, bbox, 'admin_unit_generalised')
        FROM (SELECT vintage, level, ST_Extent(geom)::geometry AS bbox
              FROM (SELECT vintage, level, geom FROM old_rows
                    UNION ALL SELECT vintage, level, geom FROM new_rows) both_sides
              GROUP BY vintage, level) c;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER admin_unit_generalised_tiles_insert AFTER INSERT ON admin_unit_generalised
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_generalised_after_change();
CREATE TRIGGER admin_unit_generalised_tiles_delete AFTER DELETE ON admin_unit_generalised
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_generalised_after_change();
CREATE TRIGGER admin_unit_generalised_tiles_update AFTER UPDATE ON admin_unit_generalised
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_generalised_after_change();
