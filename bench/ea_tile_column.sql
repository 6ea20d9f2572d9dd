-- Generated vs trigger-maintained Web Mercator column for EAs (issue #25; bench/README.md,
-- "The cold path"): psql -f bench/ea_tile_column.sql on a database with the demo loaded.
\timing on
DROP TABLE IF EXISTS t_gen, t_trg;
CREATE TABLE t_gen (id int PRIMARY KEY, status text, geom geometry(MultiPolygon,4326), geom_3857 geometry(MultiPolygon,3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED);
CREATE TABLE t_trg (id int PRIMARY KEY, status text, geom geometry(MultiPolygon,4326), geom_3857 geometry(MultiPolygon,3857));
CREATE FUNCTION pg_temp.t_trg_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.geom_3857 := ST_Transform(NEW.geom, 3857); RETURN NEW; END $$;
CREATE TRIGGER t_trg_t BEFORE INSERT OR UPDATE OF geom ON t_trg FOR EACH ROW EXECUTE FUNCTION pg_temp.t_trg_f();
CREATE INDEX ON t_gen USING gist (geom_3857); CREATE INDEX ON t_trg USING gist (geom_3857);
INSERT INTO t_gen (id, status, geom) SELECT row_number() over (), 'draft', ST_Multi(ST_Translate(geom, i*0.001, 0)) FROM admin_unit_generalised, generate_series(1,3) i WHERE band = 7;
INSERT INTO t_trg (id, status, geom) SELECT row_number() over (), 'draft', ST_Multi(ST_Translate(geom, i*0.001, 0)) FROM admin_unit_generalised, generate_series(1,3) i WHERE band = 7;
VACUUM ANALYZE t_gen; VACUUM ANALYZE t_trg;
\echo R1 geom gen
DO $$ BEGIN FOR i IN 1..3000 LOOP UPDATE t_gen SET geom = ST_Translate(geom, 0.0001, 0) WHERE id = i; END LOOP; END $$;
\echo R1 geom trg
DO $$ BEGIN FOR i IN 1..3000 LOOP UPDATE t_trg SET geom = ST_Translate(geom, 0.0001, 0) WHERE id = i; END LOOP; END $$;
\echo R1 status gen
DO $$ BEGIN FOR i IN 1..3000 LOOP UPDATE t_gen SET status = 'submitted' WHERE id = i; END LOOP; END $$;
\echo R1 status trg
DO $$ BEGIN FOR i IN 1..3000 LOOP UPDATE t_trg SET status = 'submitted' WHERE id = i; END LOOP; END $$;
\echo R2 geom trg
DO $$ BEGIN FOR i IN 3001..6000 LOOP UPDATE t_trg SET geom = ST_Translate(geom, 0.0001, 0) WHERE id = i; END LOOP; END $$;
\echo R2 geom gen
DO $$ BEGIN FOR i IN 3001..6000 LOOP UPDATE t_gen SET geom = ST_Translate(geom, 0.0001, 0) WHERE id = i; END LOOP; END $$;
\echo R2 status trg
DO $$ BEGIN FOR i IN 3001..6000 LOOP UPDATE t_trg SET status = 'approved' WHERE id = i; END LOOP; END $$;
\echo R2 status gen
DO $$ BEGIN FOR i IN 3001..6000 LOOP UPDATE t_gen SET status = 'approved' WHERE id = i; END LOOP; END $$;
DROP TABLE t_gen, t_trg;
