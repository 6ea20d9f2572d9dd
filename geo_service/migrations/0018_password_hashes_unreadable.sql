-- Least privilege (issue #22): the web service's role cannot read stored password hashes.
-- Signing in with a password reads the hash of one active user through user_password(),
-- which runs as the owner (argon2 is checked in Python, so the hash must leave the
-- database for that one check); `SELECT password_hash FROM app_user` (an injected query,
-- a leaked connection) is refused. The role still writes hashes (new users, resets).

CREATE FUNCTION user_password(p_name text)
RETURNS TABLE (name text, role text, scope text[], password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT u.name, u.role, u.scope, u.password_hash FROM app_user u
    WHERE u.name = p_name AND NOT u.disabled
$$;
REVOKE EXECUTE ON FUNCTION user_password(text) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        GRANT EXECUTE ON FUNCTION user_password(text) TO geo_service_app;
        REVOKE SELECT ON app_user FROM geo_service_app;
        GRANT SELECT (name, role, scope, disabled, created_at, password_changed_at)
            ON app_user TO geo_service_app;
    END IF;
END $$;
