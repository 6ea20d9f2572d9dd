-- Hardening (issue #22): four eyes follows merges, and the web service's role keeps only
-- what its requests need.

-- ---- merges in the EA history ----

-- An EA a merge absorbed names the EA that took its geometry, so that whoever drew any part
-- of a merged EA counts as one of its authors (four eyes).
ALTER TABLE ea_history ADD COLUMN merged_into bigint;
CREATE INDEX ea_history_merged_into_idx ON ea_history (merged_into)
    WHERE merged_into IS NOT NULL;
-- Merges made before: the entries of one merge were written in one transaction (one `at`)
-- by one user; the EA that stayed has the entry with a state after it.
UPDATE ea_history absorbed SET merged_into = kept.ea_id
FROM ea_history kept
WHERE absorbed.action = 'merge' AND absorbed.after IS NULL
  AND kept.action = 'merge' AND kept.after IS NOT NULL
  AND kept.at = absorbed.at AND kept.user_name = absorbed.user_name;

-- ---- least privilege for the web service's role (geo_service_app, migration 0010) ----

-- The tile change log is written through record_tile_change alone, which now runs as its
-- owner: the web role's EA writes still record their changes (through the triggers), but it
-- can no longer set the epoch itself (back to a number that makes stale tiles look fresh).
ALTER FUNCTION record_tile_change(text, geometry, text)
    SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION record_tile_change(text, geometry, text) FROM PUBLIC;

-- Signing in with a token: the user of a live token, looked up by its hash, as the owner;
-- the web role cannot read the stored hashes.
CREATE FUNCTION token_user(p_hash text)
RETURNS TABLE (name text, role text, scope text[], token_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT u.name, u.role, u.scope, t.id FROM app_token t JOIN app_user u ON u.name = t.user_name
    WHERE t.token_hash = p_hash AND NOT u.disabled AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
$$;
REVOKE EXECUTE ON FUNCTION token_user(text) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        GRANT EXECUTE ON FUNCTION record_tile_change(text, geometry, text) TO geo_service_app;
        GRANT EXECUTE ON FUNCTION token_user(text) TO geo_service_app;
        -- the EA history is an audit trail: appended to, never changed
        REVOKE UPDATE, DELETE, TRUNCATE ON ea_history FROM geo_service_app;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tile_change, tile_epoch FROM geo_service_app;
        -- values leave the database only through published_value (and cell_key_values),
        -- which read them as their owner; the web role sees which cells exist (as the view
        -- shows every cell, hidden or not), never a stored value, status or margin
        REVOKE SELECT ON indicator_value FROM geo_service_app;
        GRANT SELECT (indicator, vintage, level, code, period) ON indicator_value
            TO geo_service_app;
        -- the protection intervals hold the values of hidden cells (read by the disclosure
        -- audit, which runs as the owner)
        REVOKE SELECT ON disclosure_audit FROM geo_service_app;
        -- tokens: everything but their hashes (signing in goes through token_user)
        REVOKE SELECT ON app_token FROM geo_service_app;
        GRANT SELECT (id, user_name, label, created_at, expires_at, revoked_at, revoked_by)
            ON app_token TO geo_service_app;
    END IF;
END $$;
