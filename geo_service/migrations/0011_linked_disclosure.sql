-- Disclosure control across linked tables (issue #17).
--
-- The hidden cells are now chosen by the protection engine (indicators/protect.py): every
-- additive relation the catalogue declares (breakdowns such as total = male + female,
-- years as sums of quarters or months), the geographic hierarchy, the same count on two
-- vintages through their crosswalk, carried-over series and the links of rates to their
-- numerator, denominator and disclosure basis whatever their period; each primary cell's
-- protection interval is checked by linear programming and more cells are hidden until
-- every check passes.
--
-- The engine runs in Python, so the database keeps what it serves safe by itself: a write
-- to values, rules, relations, units or crosswalks (through a loader, the API or plain SQL)
-- marks every indicator linked to it as pending, and `published_value` hides every cell of
-- a pending indicator until the engine has protected it again (the loaders do so in the
-- same transaction; a running service does so within seconds of a plain SQL commit;
-- `geo-service disclosure protect` does so by hand). A stale pattern is never served.

-- Quarters as periods: 2024-Q1 … 2024-Q4.
ALTER TABLE indicator_value DROP CONSTRAINT indicator_value_period_check;
ALTER TABLE indicator_value ADD CONSTRAINT indicator_value_period_check
    CHECK (period ~ '^\d{4}(-(\d{2}(-\d{2})?|Q[1-4]))?$');

ALTER TABLE indicator
    -- years are sums of their quarters and months, quarters of their months
    ADD COLUMN period_aggregation text CHECK (period_aggregation IN ('sum')),
    -- the period of the denominator (and of a disclosure basis that is the denominator)
    -- every period's value is computed with, e.g. the census year; NULL: its own period
    ADD COLUMN denominator_period text
        CHECK (denominator_period ~ '^\d{4}(-(\d{2}(-\d{2})?|Q[1-4]))?$'),
    -- required protection of a hidden cell, each side: the larger of a share of its value
    -- and an absolute amount (NULL: 0.1 and half the threshold, or 1 without a threshold)
    ADD COLUMN protection_lower double precision
        CHECK (protection_lower >= 0 AND protection_lower < 'Infinity'),
    ADD COLUMN protection_upper double precision
        CHECK (protection_upper >= 0 AND protection_upper < 'Infinity'),
    ADD COLUMN protection_absolute double precision
        CHECK (protection_absolute >= 0 AND protection_absolute < 'Infinity'),
    -- how far a declared relation may be off in the loaded values (rounding)
    ADD COLUMN relation_tolerance double precision NOT NULL DEFAULT 0
        CHECK (relation_tolerance >= 0 AND relation_tolerance < 'Infinity'),
    -- largest perturbation of the cell-key method for drawn areas (NULL: not offered)
    ADD COLUMN cell_key_noise integer CHECK (cell_key_noise > 0);

-- Additive breakdowns: total = sum of the parts of each breakdown (an indicator may have
-- several, e.g. by sex and by urban/rural).
CREATE TABLE indicator_breakdown (
    total     text NOT NULL REFERENCES indicator (code) ON DELETE CASCADE,
    breakdown smallint NOT NULL CHECK (breakdown > 0),
    part      text NOT NULL REFERENCES indicator (code),
    PRIMARY KEY (total, breakdown, part),
    CHECK (part <> total)
);
CREATE INDEX indicator_breakdown_part_idx ON indicator_breakdown (part);

-- Why a cell is hidden: its own rule, a linked cell, or to protect another one.
ALTER TABLE suppressed_value ADD COLUMN reason text NOT NULL DEFAULT 'primary'
    CHECK (reason IN ('primary', 'inherited', 'complementary'));

-- The protection interval of every hidden cell with a required protection, as the last
-- protection computed it (the audit command recomputes it from what is served).
CREATE TABLE disclosure_audit (
    indicator      text NOT NULL,
    vintage        text NOT NULL,
    level          text NOT NULL,
    code           text NOT NULL,
    period         text NOT NULL,
    value          double precision NOT NULL,
    lower          double precision NOT NULL,
    upper          double precision NOT NULL,  -- 'Infinity' when nothing bounds it
    required_lower double precision NOT NULL,
    required_upper double precision NOT NULL,
    component      text NOT NULL,              -- hash of the equations that decide it
    PRIMARY KEY (indicator, vintage, level, code, period)
);

-- Indicators whose hidden cells are not up to date: all their cells are withheld.
CREATE TABLE disclosure_pending (
    indicator text PRIMARY KEY REFERENCES indicator (code) ON DELETE CASCADE,
    since     timestamptz NOT NULL DEFAULT now()
);

-- The secret behind the cell-key method's fixed per-cell keys (never leaves the database).
CREATE TABLE disclosure_secret (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret text NOT NULL DEFAULT gen_random_uuid()::text || gen_random_uuid()::text
);
INSERT INTO disclosure_secret DEFAULT VALUES;

DROP TRIGGER indicator_value_suppression_insert ON indicator_value;
DROP TRIGGER indicator_value_suppression_update ON indicator_value;
DROP TRIGGER indicator_value_suppression_delete ON indicator_value;
DROP TRIGGER indicator_suppression_update ON indicator;
DROP TRIGGER admin_unit_suppression_insert ON admin_unit;
DROP TRIGGER admin_unit_suppression_update ON admin_unit;
DROP FUNCTION indicator_value_refresh_suppression();
DROP FUNCTION indicator_refresh_suppression();
DROP FUNCTION admin_unit_refresh_suppression();
DROP FUNCTION refresh_suppression(text[]);
DROP FUNCTION suppression_exposed();

-- The indicators linked to the given ones by any rule or relation, either way.
CREATE FUNCTION disclosure_component(p_codes text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE link(a, b) AS (
        SELECT i.code, r.ref FROM indicator i,
               unnest(ARRAY[i.disclosure_basis, i.numerator, i.denominator]) r(ref)
        WHERE r.ref IS NOT NULL
        UNION ALL
        SELECT total, part FROM indicator_breakdown
    ),
    component(code) AS (
        SELECT unnest(p_codes)
        UNION
        SELECT CASE WHEN l.a = c.code THEN l.b ELSE l.a END
        FROM link l JOIN component c ON c.code IN (l.a, l.b)
    )
    SELECT coalesce(array_agg(code), '{}') FROM component
    WHERE code IN (SELECT code FROM indicator)
$$;

-- Withhold the indicators linked to the changed ones until they are protected again. Takes
-- the protection lock, so a write and a protection never interleave.
CREATE FUNCTION mark_disclosure_pending(p_changed text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    component text[];
BEGIN
    IF p_changed IS NULL OR cardinality(p_changed) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('geo_service.suppression'));
    component := disclosure_component(p_changed);
    INSERT INTO disclosure_pending (indicator) SELECT unnest(component)
    ON CONFLICT DO NOTHING;
    -- the tiles showing them change now (everything withheld), and again when protected
    PERFORM record_tile_change(s.level || '-' || s.vintage, NULL, 'disclosure pending')
    FROM (SELECT DISTINCT level, vintage FROM indicator_series
          WHERE indicator = ANY(component)) s;
    PERFORM pg_notify('disclosure_pending', '');
END
$$;

CREATE FUNCTION indicator_value_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM mark_disclosure_pending(ARRAY(SELECT DISTINCT indicator FROM old_rows));
    ELSE
        PERFORM mark_disclosure_pending(ARRAY(SELECT DISTINCT indicator FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_value_pending_insert AFTER INSERT ON indicator_value
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_mark_pending();
CREATE TRIGGER indicator_value_pending_update AFTER UPDATE ON indicator_value
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_mark_pending();
CREATE TRIGGER indicator_value_pending_delete AFTER DELETE ON indicator_value
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_mark_pending();

-- A changed rule or link (not a changed name) changes what is hidden.
CREATE FUNCTION indicator_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mark_disclosure_pending(ARRAY(
        SELECT n.code FROM new_rows n JOIN old_rows o ON o.code = n.code
        WHERE (o.kind, o.numerator, o.denominator, o.multiplier, o.suppress_below,
               o.disclosure_basis, o.period_aggregation, o.denominator_period,
               o.protection_lower, o.protection_upper, o.protection_absolute)
              IS DISTINCT FROM
              (n.kind, n.numerator, n.denominator, n.multiplier, n.suppress_below,
               n.disclosure_basis, n.period_aggregation, n.denominator_period,
               n.protection_lower, n.protection_upper, n.protection_absolute)
        UNION
        -- the indicators it referred to before are no longer linked through it
        SELECT r.ref FROM old_rows o JOIN new_rows n ON n.code = o.code,
               unnest(ARRAY[o.numerator, o.denominator, o.disclosure_basis]) r(ref)
        WHERE r.ref IS NOT NULL
          AND (o.numerator, o.denominator, o.disclosure_basis)
              IS DISTINCT FROM (n.numerator, n.denominator, n.disclosure_basis)));
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_pending_update AFTER UPDATE ON indicator
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_mark_pending();

CREATE FUNCTION indicator_breakdown_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM mark_disclosure_pending(ARRAY(
            SELECT total FROM old_rows UNION SELECT part FROM old_rows));
    ELSE
        PERFORM mark_disclosure_pending(ARRAY(
            SELECT total FROM new_rows UNION SELECT part FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_breakdown_pending_insert AFTER INSERT ON indicator_breakdown
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_breakdown_mark_pending();
CREATE TRIGGER indicator_breakdown_pending_delete AFTER DELETE ON indicator_breakdown
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_breakdown_mark_pending();

-- A series' derivation (carried over or observed) changes its equations.
CREATE FUNCTION indicator_series_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mark_disclosure_pending(ARRAY(
        SELECT n.indicator FROM new_rows n JOIN old_rows o USING (indicator, vintage, level)
        WHERE o.derivation IS DISTINCT FROM n.derivation));
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_series_pending_update AFTER UPDATE ON indicator_series
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_series_mark_pending();

-- Units and crosswalks make the geographic and vintage equations; a renamed unit changes
-- nothing.
CREATE FUNCTION admin_unit_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- (separate: an INSERT trigger has no old_rows)
        IF NOT EXISTS (
                SELECT 1 FROM new_rows n JOIN old_rows o
                  ON o.vintage = n.vintage AND o.level = n.level AND o.code = n.code
                WHERE o.parent_code IS DISTINCT FROM n.parent_code) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM mark_disclosure_pending(ARRAY(
        SELECT DISTINCT s.indicator FROM indicator_series s
        WHERE s.vintage IN (SELECT DISTINCT vintage FROM new_rows)));
    RETURN NULL;
END
$$;
CREATE TRIGGER admin_unit_pending_insert AFTER INSERT ON admin_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_mark_pending();
CREATE TRIGGER admin_unit_pending_update AFTER UPDATE ON admin_unit
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_mark_pending();

CREATE FUNCTION crosswalk_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM mark_disclosure_pending(ARRAY(
            SELECT DISTINCT s.indicator FROM indicator_series s, old_rows o
            WHERE s.vintage IN (o.from_vintage, o.to_vintage)));
    ELSE
        PERFORM mark_disclosure_pending(ARRAY(
            SELECT DISTINCT s.indicator FROM indicator_series s, new_rows n
            WHERE s.vintage IN (n.from_vintage, n.to_vintage)));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER crosswalk_pending_insert AFTER INSERT ON crosswalk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION crosswalk_mark_pending();
CREATE TRIGGER crosswalk_pending_update AFTER UPDATE ON crosswalk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION crosswalk_mark_pending();
CREATE TRIGGER crosswalk_pending_delete AFTER DELETE ON crosswalk
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION crosswalk_mark_pending();

-- The only way values leave the database: a hidden cell, or any cell of an indicator
-- whose protection is pending, is null with status 'suppressed'.
CREATE OR REPLACE VIEW published_value AS
SELECT v.indicator, v.vintage, v.level, v.code, v.period,
       CASE WHEN h.hidden THEN NULL ELSE v.value END AS value,
       CASE WHEN h.hidden THEN 'suppressed' ELSE v.status END AS status,
       CASE WHEN h.hidden THEN NULL ELSE v.moe END AS moe
FROM indicator_value v
CROSS JOIN LATERAL (SELECT
    EXISTS (SELECT 1 FROM suppressed_value s
            WHERE s.indicator = v.indicator AND s.vintage = v.vintage AND s.level = v.level
              AND s.code = v.code AND s.period = v.period)
    OR EXISTS (SELECT 1 FROM disclosure_pending p WHERE p.indicator = v.indicator)
    AS hidden) h;

-- Drawn areas with the cell-key method: each unit's value as published, or, for a hidden
-- cell, perturbed by a fixed amount drawn from its own key (a hash of the secret and the
-- cell), uniformly among the whole numbers within p_noise of it (never below zero). The
-- same cell always gets the same perturbation, so repeated queries cannot average it away.
CREATE FUNCTION cell_key_values(p_indicator text, p_vintage text, p_level text,
                                p_period text, p_codes text[], p_noise integer)
RETURNS TABLE (code text, value double precision, status text, perturbed boolean)
LANGUAGE sql STABLE AS $$
    SELECT p.code,
           CASE WHEN p.status <> 'suppressed' THEN p.value
                WHEN v.value IS NULL OR v.status NOT IN ('ok', 'provisional', 'suppressed')
                    THEN NULL
                ELSE greatest(0, round(v.value) - p_noise) + floor(k.u * (
                         round(v.value) + p_noise - greatest(0, round(v.value) - p_noise) + 1))
           END,
           CASE WHEN p.status <> 'suppressed' THEN p.status
                WHEN v.value IS NULL THEN 'suppressed'
                ELSE 'ok' END,
           p.status = 'suppressed' AND v.value IS NOT NULL
    FROM published_value p
    JOIN indicator_value v USING (indicator, vintage, level, code, period)
    CROSS JOIN LATERAL (SELECT
        ('x' || substr(encode(sha256(convert_to(
            (SELECT secret FROM disclosure_secret) || '|' || p.indicator || '|' || p.vintage
            || '|' || p.level || '|' || p.code || '|' || p.period, 'UTF8')), 'hex'), 1, 13)
        )::bit(52)::bigint / 4503599627370496.0 AS u) k
    WHERE p.indicator = p_indicator AND p.vintage = p_vintage AND p.level = p_level
      AND p.period = p_period AND p.code = ANY(p_codes)
$$;

-- Everything is protected again by the engine once (migrate runs it).
INSERT INTO disclosure_pending (indicator)
SELECT DISTINCT indicator FROM indicator_value ON CONFLICT DO NOTHING;

-- The secret is read only by cell_key_values, which runs as its owner: the web service's
-- restricted role (migration 0010) may call it but cannot read the secret itself.
ALTER FUNCTION cell_key_values(text, text, text, text, text[], integer)
    SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE ALL ON disclosure_secret FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        REVOKE ALL ON disclosure_secret FROM geo_service_app;
    END IF;
END $$;
