-- Where a crosswalk level came from (a loaded file, or computed from geometry: with which
-- weights, raster and sliver threshold, when) and, for a computed one, the quality of each
-- unit: the share of its area the other vintage's units cover and the share dropped as slivers.
CREATE TABLE crosswalk_provenance (
    from_vintage     text NOT NULL REFERENCES vintage (id),
    to_vintage       text NOT NULL REFERENCES vintage (id),
    level            text NOT NULL REFERENCES admin_level (id),
    method           text NOT NULL CHECK (method IN ('computed', 'loaded')),
    weights          text[] NOT NULL,
    raster           text,
    sliver_threshold double precision CHECK (sliver_threshold >= 0 AND sliver_threshold < 1),
    built_at         timestamptz NOT NULL DEFAULT now(),
    figures          jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (from_vintage, to_vintage, level)
);

CREATE TABLE crosswalk_quality (
    from_vintage  text NOT NULL,
    to_vintage    text NOT NULL,
    level         text NOT NULL,
    side          text NOT NULL CHECK (side IN ('from', 'to')),
    code          text NOT NULL,
    covered_share double precision NOT NULL CHECK (covered_share BETWEEN 0 AND 1),
    sliver_share  double precision NOT NULL CHECK (sliver_share >= 0),
    area_weighted boolean NOT NULL DEFAULT false,  -- population shares fell back to area
    PRIMARY KEY (from_vintage, to_vintage, level, side, code),
    FOREIGN KEY (from_vintage, to_vintage, level)
        REFERENCES crosswalk_provenance ON DELETE CASCADE
);
