-- The role the web service works as: it reads everything and writes only what its requests
-- change (enumeration areas and their history, and through their triggers the tile change
-- log); loaders and migrations run as the owner. A login role of the operator's is made a
-- member of it (the embedded database does this itself). Where the migrating user may not
-- create roles, an administrator creates geo_service_app and runs the migration again.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        BEGIN
            CREATE ROLE geo_service_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'role geo_service_app not created (no CREATEROLE): the service '
                         'connects with the privileges of DATABASE_URL';
            RETURN;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO geo_service_app',
                   current_database());
    GRANT USAGE ON SCHEMA public TO geo_service_app;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO geo_service_app;
    GRANT INSERT, UPDATE, DELETE ON enumeration_area, ea_history TO geo_service_app;
    GRANT INSERT ON tile_change TO geo_service_app;
    GRANT UPDATE ON tile_epoch TO geo_service_app;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO geo_service_app;
    -- tables later migrations add can be read too
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO geo_service_app;
END $$;
