-- A TRUNCATE fires no row trigger: record it as a change of every tile it can affect, so
-- that caches follow it like any other change. ('*' is every layer: a truncated table of
-- boundaries or values leaves nothing to say which collections it held.)

CREATE FUNCTION tiles_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_tile_change(TG_ARGV[0], NULL, 'truncate ' || TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER admin_unit_tiles_truncate AFTER TRUNCATE ON admin_unit
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER admin_unit_generalised_tiles_truncate AFTER TRUNCATE ON admin_unit_generalised
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER indicator_value_tiles_truncate AFTER TRUNCATE ON indicator_value
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER indicator_series_tiles_truncate AFTER TRUNCATE ON indicator_series
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER indicator_tiles_truncate AFTER TRUNCATE ON indicator
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER suppressed_value_tiles_truncate AFTER TRUNCATE ON suppressed_value
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('*');
CREATE TRIGGER enumeration_area_tiles_truncate AFTER TRUNCATE ON enumeration_area
    FOR EACH STATEMENT EXECUTE FUNCTION tiles_after_truncate('enumeration-areas');
