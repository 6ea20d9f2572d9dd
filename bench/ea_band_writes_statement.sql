-- The alternative to migration 0023's row trigger measured in bench/README.md ("EA band
-- columns by trigger"): bands computed set-wise after each INSERT/COPY statement from its
-- transition table, 0022's way (and by the row trigger only on `UPDATE OF geom`). Apply to a scratch
-- copy of a database migrated to 0023, then measure it with bench/ea_band_writes.py.
\set ON_ERROR_STOP 1
DROP TRIGGER enumeration_area_bands ON enumeration_area;
CREATE TRIGGER enumeration_area_bands BEFORE UPDATE OF geom ON enumeration_area
    FOR EACH ROW EXECUTE FUNCTION enumeration_area_bands();
CREATE FUNCTION enumeration_area_bands_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE enumeration_area e
    SET geom_z5 = coalesce(ea_band_snapped(n.m, 5), ea_band_cell(ST_PointOnSurface(n.m), 5)),
        geom_z6 = coalesce(ea_band_snapped(n.m, 6), ea_band_cell(ST_PointOnSurface(n.m), 6)),
        geom_z7 = coalesce(ea_band_snapped(n.m, 7), ea_band_cell(ST_PointOnSurface(n.m), 7)),
        geom_z8 = coalesce(ea_band_snapped(n.m, 8), ea_band_cell(ST_PointOnSurface(n.m), 8))
    FROM (SELECT id, ST_Transform(geom, 3857) AS m FROM new_rows) n
    WHERE e.id = n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER enumeration_area_bands_insert AFTER INSERT ON enumeration_area
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION enumeration_area_bands_after_insert();
