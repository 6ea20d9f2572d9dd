-- Disclosure control that differencing cannot undo, kept in a table the triggers refresh.
--
-- Cells are hidden until nothing changes any more:
--  * primary: the rule (count below suppress_below, or a basis below it, missing or
--    suppressed), or a status 'suppressed' loaded as such;
--  * inherited: a cell whose disclosure basis, numerator or denominator cell is hidden,
--    through any chain of them (density × area would otherwise give back a population);
--    and a hidden rate hides its numerator;
--  * complementary, in each "equation" a published total makes: the cells of one level
--    whose nearest ancestor with a value for the indicator and period is that total. When
--    one of them is hidden, or several summing below the threshold (any number below two
--    without a threshold), the smallest published one is hidden with them (or the total,
--    when none is left);
--  * downwards: a hidden cell whose cells one level down are all published would be their
--    sum: the smallest of them is hidden.
-- Refreshes run one at a time (an advisory lock), each seeing what the one before
-- committed, and record a tile change for every collection whose hidden cells changed.

CREATE TABLE suppressed_value (
    indicator text NOT NULL,
    vintage   text NOT NULL,
    level     text NOT NULL,
    code      text NOT NULL,
    period    text NOT NULL,
    PRIMARY KEY (indicator, vintage, level, code, period)
);

-- The equations of published totals that expose a hidden cell: one hidden cell, or several
-- summing below the threshold (any number below two when there is no threshold).
CREATE FUNCTION suppression_exposed()
RETURNS TABLE (indicator text, vintage text, level text, period text, anchor text,
               anchor_level text)
LANGUAGE plpgsql AS $$
BEGIN
    -- (plpgsql: the temporary table it reads exists only during a refresh)
    RETURN QUERY
    SELECT c.indicator, c.vintage, c.level, c.period, c.anchor, c.anchor_level
    FROM suppression_cell c
    WHERE c.kind = 'count' AND c.anchor_published
    GROUP BY c.indicator, c.vintage, c.level, c.period, c.anchor, c.anchor_level
    HAVING count(*) FILTER (WHERE c.hidden) = 1
        OR (count(*) FILTER (WHERE c.hidden) > 1
            AND coalesce(sum(c.value) FILTER (WHERE c.hidden), 0) < max(c.suppress_below));
END
$$;

CREATE FUNCTION refresh_suppression(p_changed text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    affected text[];  -- the changed indicators and every one linked to them by a rule
    changed  integer;
    n_rows   integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('geo_service.suppression'));
    -- the changed indicators with every one linked to them by a rule, either way (hiding
    -- moves both ways: from a count to its rates, and from a hidden rate to its numerator)
    WITH RECURSIVE linked(a, b) AS (
        SELECT i.code, r.ref FROM indicator i,
               unnest(ARRAY[i.disclosure_basis, i.numerator, i.denominator]) r(ref)
        WHERE r.ref IS NOT NULL
    ),
    component(code) AS (
        SELECT unnest(p_changed)
        UNION
        SELECT CASE WHEN l.a = c.code THEN l.b ELSE l.a END
        FROM linked l JOIN component c ON c.code IN (l.a, l.b))
    SELECT array_agg(code) INTO affected FROM component;
    IF affected IS NULL THEN
        RETURN;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS suppression_cell (
        indicator text, vintage text, level text, code text, period text,
        value double precision, kind text, suppress_below double precision,
        hidden boolean, anchor text, anchor_level text, anchor_published boolean
    ) ON COMMIT DROP;
    TRUNCATE suppression_cell;
    INSERT INTO suppression_cell
    SELECT v.indicator, v.vintage, v.level, v.code, v.period,
           CASE WHEN v.status IN ('ok', 'provisional') THEN v.value END, i.kind,
           i.suppress_below,
           coalesce(v.status = 'suppressed' OR (i.suppress_below IS NOT NULL AND CASE
               WHEN i.disclosure_basis IS NULL THEN v.value < i.suppress_below
               ELSE b.status IS NULL OR b.status NOT IN ('ok', 'provisional')
                    OR b.value < i.suppress_below END), false),
           NULL, NULL, NULL
    FROM indicator_value v
    JOIN indicator i ON i.code = v.indicator
    LEFT JOIN indicator_value b
           ON b.indicator = i.disclosure_basis AND b.vintage = v.vintage
          AND b.level = v.level AND b.code = v.code AND b.period = v.period
    WHERE v.indicator = ANY(affected);
    CREATE INDEX IF NOT EXISTS suppression_cell_key
        ON suppression_cell (indicator, vintage, level, code, period);
    ANALYZE suppression_cell;

    -- each cell's anchor: its nearest ancestor unit with a cell of the same indicator and
    -- period (the total its equation is about)
    WITH RECURSIVE up(indicator, vintage, level, code, period, ancestor, depth) AS (
        SELECT c.indicator, c.vintage, c.level, c.code, c.period, u.parent_code, 1
        FROM suppression_cell c
        JOIN admin_unit u ON u.vintage = c.vintage AND u.level = c.level AND u.code = c.code
        WHERE u.parent_code IS NOT NULL
        UNION ALL
        SELECT up.indicator, up.vintage, up.level, up.code, up.period, p.parent_code,
               up.depth + 1
        FROM up
        JOIN admin_unit p ON p.vintage = up.vintage AND p.code = up.ancestor
                         AND p.level <> up.level
        WHERE p.parent_code IS NOT NULL AND up.depth < 5
          AND NOT EXISTS (SELECT 1 FROM suppression_cell a
                          WHERE a.indicator = up.indicator AND a.vintage = up.vintage
                            AND a.code = up.ancestor AND a.period = up.period)
    ),
    anchored AS (
        SELECT DISTINCT ON (up.indicator, up.vintage, up.level, up.code, up.period)
               up.indicator, up.vintage, up.level, up.code, up.period,
               a.code AS anchor, a.level AS anchor_level
        FROM up
        JOIN suppression_cell a
          ON a.indicator = up.indicator AND a.vintage = up.vintage
         AND a.code = up.ancestor AND a.period = up.period AND a.level <> up.level
        ORDER BY up.indicator, up.vintage, up.level, up.code, up.period, up.depth
    )
    UPDATE suppression_cell c SET anchor = x.anchor, anchor_level = x.anchor_level
    FROM anchored x
    WHERE c.indicator = x.indicator AND c.vintage = x.vintage AND c.level = x.level
      AND c.code = x.code AND c.period = x.period;

    FOR pass IN 1..50 LOOP
        changed := 0;
        -- inherited from a hidden basis, numerator or denominator of the same unit
        UPDATE suppression_cell c SET hidden = true
        FROM indicator i, suppression_cell d
        WHERE i.code = c.indicator AND NOT c.hidden AND d.hidden
          AND d.indicator IN (i.disclosure_basis, i.numerator, i.denominator)
          AND d.vintage = c.vintage AND d.level = c.level AND d.code = c.code
          AND d.period = c.period;
        GET DIAGNOSTICS n_rows = ROW_COUNT;
        changed := changed + n_rows;

        -- a hidden rate, ratio or density would come back as its published numerator over
        -- its published denominator: the numerator is hidden with it
        UPDATE suppression_cell n SET hidden = true
        FROM indicator i, suppression_cell q
        WHERE q.hidden AND i.code = q.indicator AND n.indicator = i.numerator
          AND n.vintage = q.vintage AND n.level = q.level AND n.code = q.code
          AND n.period = q.period AND NOT n.hidden AND n.value IS NOT NULL;
        GET DIAGNOSTICS n_rows = ROW_COUNT;
        changed := changed + n_rows;

        -- complementary, in the equations of published totals
        UPDATE suppression_cell c SET anchor_published = NOT a.hidden AND a.value IS NOT NULL
        FROM suppression_cell a
        WHERE a.indicator = c.indicator AND a.vintage = c.vintage
          AND a.level = c.anchor_level AND a.code = c.anchor AND a.period = c.period;
        WITH exposed AS (SELECT * FROM suppression_exposed()),
        pick AS (
            SELECT DISTINCT ON (c.indicator, c.vintage, c.level, c.period, c.anchor)
                   c.indicator, c.vintage, c.level, c.code, c.period
            FROM suppression_cell c
            JOIN exposed e ON e.indicator = c.indicator AND e.vintage = c.vintage
                          AND e.level = c.level AND e.period = c.period
                          AND e.anchor = c.anchor
            WHERE NOT c.hidden AND c.value IS NOT NULL
            ORDER BY c.indicator, c.vintage, c.level, c.period, c.anchor, c.value, c.code
        )
        UPDATE suppression_cell c SET hidden = true
        FROM pick p
        WHERE c.indicator = p.indicator AND c.vintage = p.vintage AND c.level = p.level
          AND c.code = p.code AND c.period = p.period;
        GET DIAGNOSTICS n_rows = ROW_COUNT;
        changed := changed + n_rows;
        -- an exposed cell with no published sibling to hide with it: hide the total
        UPDATE suppression_cell t SET hidden = true
        FROM suppression_exposed() e
        WHERE t.indicator = e.indicator AND t.vintage = e.vintage AND t.level = e.anchor_level
          AND t.code = e.anchor AND t.period = e.period AND NOT t.hidden
          AND NOT EXISTS (SELECT 1 FROM suppression_cell c
                          WHERE c.indicator = e.indicator AND c.vintage = e.vintage
                            AND c.level = e.level AND c.period = e.period
                            AND c.anchor = e.anchor AND NOT c.hidden AND c.value IS NOT NULL);
        GET DIAGNOSTICS n_rows = ROW_COUNT;
        changed := changed + n_rows;

        -- downwards: a hidden total whose cells one level down are all published
        WITH open_totals AS (
            SELECT c.indicator, c.vintage, c.anchor_level AS level, c.anchor AS code,
                   c.period, c.level AS child_level
            FROM suppression_cell c
            JOIN suppression_cell t
              ON t.indicator = c.indicator AND t.vintage = c.vintage
             AND t.level = c.anchor_level AND t.code = c.anchor AND t.period = c.period
            WHERE c.kind = 'count' AND t.hidden
            GROUP BY c.indicator, c.vintage, c.anchor_level, c.anchor, c.period, c.level
            HAVING bool_and(NOT c.hidden AND c.value IS NOT NULL)
        ),
        pick AS (
            SELECT DISTINCT ON (o.indicator, o.vintage, o.code, o.period, o.child_level)
                   c.indicator, c.vintage, c.level, c.code, c.period
            FROM open_totals o
            JOIN suppression_cell c
              ON c.indicator = o.indicator AND c.vintage = o.vintage
             AND c.level = o.child_level AND c.anchor = o.code AND c.period = o.period
            ORDER BY o.indicator, o.vintage, o.code, o.period, o.child_level, c.value, c.code
        )
        UPDATE suppression_cell c SET hidden = true
        FROM pick p
        WHERE c.indicator = p.indicator AND c.vintage = p.vintage AND c.level = p.level
          AND c.code = p.code AND c.period = p.period;
        GET DIAGNOSTICS n_rows = ROW_COUNT;
        changed := changed + n_rows;
        EXIT WHEN changed = 0;
    END LOOP;

    -- tiles of every collection whose hidden cells changed are stale
    PERFORM record_tile_change(d.level || '-' || d.vintage, NULL, 'suppression')
    FROM (SELECT DISTINCT vintage, level FROM (
              (SELECT indicator, vintage, level, code, period FROM suppression_cell
               WHERE hidden AND indicator = ANY(affected)
               EXCEPT
               SELECT indicator, vintage, level, code, period FROM suppressed_value
               WHERE indicator = ANY(affected))
              UNION ALL
              (SELECT indicator, vintage, level, code, period FROM suppressed_value
               WHERE indicator = ANY(affected)
               EXCEPT
               SELECT indicator, vintage, level, code, period FROM suppression_cell
               WHERE hidden AND indicator = ANY(affected))) diff) d;

    DELETE FROM suppressed_value WHERE indicator = ANY(affected);
    INSERT INTO suppressed_value (indicator, vintage, level, code, period)
    SELECT indicator, vintage, level, code, period FROM suppression_cell
    WHERE hidden AND indicator = ANY(affected);
END
$$;

-- A unit's new parent changes the equations; a renamed unit changes nothing.
CREATE FUNCTION admin_unit_refresh_suppression() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- (separate: an INSERT trigger has no old_rows)
        IF NOT EXISTS (
                SELECT 1 FROM new_rows n JOIN old_rows o
                  ON o.vintage = n.vintage AND o.level = n.level AND o.code = n.code
                WHERE o.parent_code IS DISTINCT FROM n.parent_code) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM refresh_suppression(ARRAY(
        SELECT DISTINCT s.indicator FROM indicator_series s
        WHERE s.vintage IN (SELECT DISTINCT vintage FROM new_rows)));
    RETURN NULL;
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

CREATE TRIGGER admin_unit_suppression_insert AFTER INSERT ON admin_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION admin_unit_refresh_suppression();
CREATE TRIGGER admin_unit_suppression_update AFTER UPDATE ON admin_unit
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
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
