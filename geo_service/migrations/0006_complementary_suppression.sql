-- Disclosure control that differencing cannot undo, kept in a table the triggers refresh.
--
-- Primary suppression (as before): a value whose count is below the indicator's
-- suppress_below, or whose disclosure basis is suppressed, missing or not available.
--
-- Complementary suppression: a published parent total minus its published children would
-- give back a child's suppressed count. Among the children of one published parent, when
-- one count is suppressed (or several whose sum is still below the threshold), the smallest
-- published sibling is suppressed with them; the parent then only tells their sum, which is
-- at least the threshold.
--
-- A value also follows the final suppression of its disclosure basis, numerator and
-- denominator for the same unit and period: density × area would otherwise give back a
-- suppressed population.

CREATE TABLE suppressed_value (
    indicator text NOT NULL,
    vintage   text NOT NULL,
    level     text NOT NULL,
    code      text NOT NULL,
    period    text NOT NULL,
    PRIMARY KEY (indicator, vintage, level, code, period)
);

CREATE FUNCTION refresh_suppression(p_changed text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    affected text[];  -- the changed indicators and every one whose rule depends on them
    needed   text[];  -- those and the indicators their rules read
BEGIN
    WITH RECURSIVE a(code) AS (
        SELECT unnest(p_changed)
        UNION
        SELECT i.code FROM indicator i JOIN a
            ON a.code IN (i.disclosure_basis, i.numerator, i.denominator))
    SELECT array_agg(code) INTO affected FROM a;
    SELECT array_agg(DISTINCT c) INTO needed FROM (
        SELECT unnest(affected)
        UNION SELECT unnest(ARRAY[i.disclosure_basis, i.numerator, i.denominator])
        FROM indicator i WHERE i.code = ANY(affected)) t(c) WHERE c IS NOT NULL;
    DELETE FROM suppressed_value WHERE indicator = ANY(affected);
    INSERT INTO suppressed_value (indicator, vintage, level, code, period)
    WITH ruled AS (
        SELECT v.indicator, v.vintage, v.level, v.code, v.period, v.value, v.status,
               i.kind, i.suppress_below,
               coalesce(v.status = 'suppressed' OR (i.suppress_below IS NOT NULL AND CASE
                   WHEN i.disclosure_basis IS NULL THEN v.value < i.suppress_below
                   ELSE b.status IS NULL OR b.status NOT IN ('ok', 'provisional')
                        OR b.value < i.suppress_below END), false) AS primary_suppressed
        FROM indicator_value v
        JOIN indicator i ON i.code = v.indicator
        LEFT JOIN indicator_value b
               ON b.indicator = i.disclosure_basis AND b.vintage = v.vintage
              AND b.level = v.level AND b.code = v.code AND b.period = v.period
        WHERE v.indicator = ANY(needed)
    ),
    siblings AS (
        SELECT r.*,
               -- the parent's value is published: differencing is possible
               coalesce(p.status IN ('ok', 'provisional') AND NOT p.primary_suppressed, false)
                   AS parent_published,
               count(*) FILTER (WHERE r.primary_suppressed) OVER w AS suppressed_siblings,
               coalesce(sum(r.value) FILTER (WHERE r.primary_suppressed) OVER w, 0)
                   AS suppressed_sum,
               row_number() OVER (w ORDER BY r.primary_suppressed OR r.value IS NULL, r.value,
                                  r.code) AS smallest_published
        FROM ruled r
        JOIN admin_unit u ON u.vintage = r.vintage AND u.level = r.level AND u.code = r.code
        LEFT JOIN ruled p
               ON p.indicator = r.indicator AND p.vintage = r.vintage AND p.period = r.period
              AND p.code = u.parent_code AND p.level <> r.level
        WINDOW w AS (PARTITION BY r.indicator, r.vintage, r.level, r.period, u.parent_code)
    ),
    final AS (
        SELECT s.indicator, s.vintage, s.level, s.code, s.period,
               s.primary_suppressed OR (
                   s.kind = 'count' AND s.suppress_below IS NOT NULL AND s.parent_published
                   AND s.suppressed_siblings > 0 AND s.value IS NOT NULL
                   AND NOT s.primary_suppressed AND s.smallest_published = 1
                   AND (s.suppressed_siblings = 1 OR s.suppressed_sum < s.suppress_below))
                   AS suppressed
        FROM siblings s
    )
    SELECT f.indicator, f.vintage, f.level, f.code, f.period
    FROM final f WHERE f.indicator = ANY(affected) AND f.suppressed
    UNION  -- (a value whose basis, numerator or denominator is suppressed)
    SELECT f.indicator, f.vintage, f.level, f.code, f.period
    FROM final f
    JOIN (SELECT i.code, unnest(ARRAY[i.disclosure_basis, i.numerator, i.denominator]) AS dep
          FROM indicator i) r ON r.code = f.indicator
    JOIN final d
      ON d.indicator = r.dep AND d.vintage = f.vintage AND d.level = f.level
     AND d.code = f.code AND d.period = f.period AND d.suppressed
    WHERE f.indicator = ANY(affected);
END
$$;

CREATE FUNCTION indicator_value_refresh_suppression() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM refresh_suppression(ARRAY(SELECT DISTINCT indicator FROM old_rows));
    ELSE
        PERFORM refresh_suppression(ARRAY(SELECT DISTINCT indicator FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_value_suppression_insert AFTER INSERT ON indicator_value
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_refresh_suppression();
CREATE TRIGGER indicator_value_suppression_update AFTER UPDATE ON indicator_value
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_refresh_suppression();
CREATE TRIGGER indicator_value_suppression_delete AFTER DELETE ON indicator_value
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_value_refresh_suppression();

-- A changed rule (threshold, basis, numerator, kind) changes what is suppressed.
CREATE FUNCTION indicator_refresh_suppression() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_suppression(ARRAY(SELECT code FROM new_rows));
    RETURN NULL;
END
$$;
CREATE TRIGGER indicator_suppression_update AFTER UPDATE ON indicator
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION indicator_refresh_suppression();

-- New or changed units change who is whose sibling.
CREATE FUNCTION admin_unit_refresh_suppression() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_suppression(ARRAY(
        SELECT DISTINCT s.indicator FROM indicator_series s
        WHERE s.vintage IN (SELECT DISTINCT vintage FROM new_rows)));
    RETURN NULL;
END
$$;
CREATE TRIGGER admin_unit_suppression_insert AFTER INSERT ON admin_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_refresh_suppression();
CREATE TRIGGER admin_unit_suppression_update AFTER UPDATE ON admin_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_refresh_suppression();

-- The only way values leave the database.
CREATE OR REPLACE VIEW published_value AS
SELECT v.indicator, v.vintage, v.level, v.code, v.period,
       CASE WHEN s.indicator IS NOT NULL THEN NULL ELSE v.value END AS value,
       CASE WHEN s.indicator IS NOT NULL THEN 'suppressed' ELSE v.status END AS status,
       CASE WHEN s.indicator IS NOT NULL THEN NULL ELSE v.moe END AS moe
FROM indicator_value v
LEFT JOIN suppressed_value s
       ON s.indicator = v.indicator AND s.vintage = v.vintage AND s.level = v.level
      AND s.code = v.code AND s.period = v.period;

SELECT refresh_suppression(ARRAY(SELECT code FROM indicator));
