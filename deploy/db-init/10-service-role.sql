-- Run once by the PostGIS image on a new volume (as its superuser): the role the web
-- service works as (migration 0010 grants it what it may do) and the service's login in it,
-- GEO_SERVICE_APP_DATABASE_URL in compose.yaml. Change the password for a real deployment.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        CREATE ROLE geo_service_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_web') THEN
        CREATE ROLE geo_service_web LOGIN PASSWORD 'geo_service_web' IN ROLE geo_service_app;
    END IF;
END $$;
