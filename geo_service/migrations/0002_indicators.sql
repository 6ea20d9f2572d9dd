-- Statistical indicators joined to boundaries by (vintage, level, code), with disclosure control.

CREATE TABLE indicator (
    code             text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name_vi          text NOT NULL,
    name_en          text NOT NULL,
    unit             text NOT NULL DEFAULT '',
    description      text NOT NULL DEFAULT '',
    source           text NOT NULL DEFAULT '',
    licence          text NOT NULL DEFAULT '',
    kind             text NOT NULL CHECK (kind IN ('count', 'rate', 'ratio', 'index', 'density',
                                                   'share')),
    decimals         smallint NOT NULL DEFAULT 0 CHECK (decimals BETWEEN 0 AND 10),
    -- rates, densities and shares are numerator / denominator (x multiplier)
    numerator        text REFERENCES indicator (code),
    denominator      text REFERENCES indicator (code),
    multiplier       double precision NOT NULL DEFAULT 1,
    -- disclosure rule: suppress when the underlying count is below suppress_below; the
    -- count is disclosure_basis's value (the indicator's own value when it is a count)
    suppress_below   double precision CHECK (suppress_below IS NULL OR suppress_below > 0),
    disclosure_basis text REFERENCES indicator (code),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- One series = the values of an indicator on one (vintage, level); derived series say how.
CREATE TABLE indicator_series (
    indicator  text NOT NULL REFERENCES indicator (code) ON DELETE CASCADE,
    vintage    text NOT NULL REFERENCES vintage (id),
    level      text NOT NULL REFERENCES admin_level (id),
    derivation jsonb,           -- NULL for observed data
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator, vintage, level)
);

CREATE TABLE indicator_value (
    indicator text NOT NULL,
    vintage   text NOT NULL,
    level     text NOT NULL,
    code      text NOT NULL,
    period    text NOT NULL CHECK (period ~ '^\d{4}(-\d{2}(-\d{2})?)?$'),
    value     double precision CHECK (value IS NULL OR value = value),   -- no NaN
    status    text NOT NULL CHECK (status IN ('ok', 'provisional', 'suppressed', 'not_available')),
    moe       double precision CHECK (moe IS NULL OR moe >= 0),
    PRIMARY KEY (indicator, vintage, level, code, period),
    FOREIGN KEY (indicator, vintage, level) REFERENCES indicator_series ON DELETE CASCADE,
    -- deferred, so a boundary reload can delete and re-insert units in one transaction
    FOREIGN KEY (vintage, level, code) REFERENCES admin_unit DEFERRABLE INITIALLY DEFERRED,
    CHECK ((status IN ('ok', 'provisional')) = (value IS NOT NULL) OR status = 'suppressed')
);
CREATE INDEX indicator_value_unit_idx ON indicator_value (vintage, level, code);

-- The only way values leave the database: disclosure control applied in one place.
CREATE VIEW published_value AS
SELECT v.indicator, v.vintage, v.level, v.code, v.period,
       CASE WHEN suppressed THEN NULL ELSE v.value END AS value,
       CASE WHEN suppressed THEN 'suppressed' ELSE v.status END AS status,
       CASE WHEN suppressed THEN NULL ELSE v.moe END AS moe
FROM indicator_value v
JOIN indicator i ON i.code = v.indicator
LEFT JOIN indicator_value b
       ON b.indicator = i.disclosure_basis AND b.vintage = v.vintage AND b.level = v.level
      AND b.code = v.code AND b.period = v.period
CROSS JOIN LATERAL (SELECT
    v.status = 'suppressed'
    OR (i.suppress_below IS NOT NULL AND (
            b.status = 'suppressed'
         OR coalesce(b.value, CASE WHEN i.disclosure_basis IS NULL THEN v.value END)
            < i.suppress_below))
    AS suppressed) s;
