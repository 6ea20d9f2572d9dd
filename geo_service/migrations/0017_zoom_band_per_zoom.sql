-- Zoom bands, one per zoom where tiles are heaviest (issue #25): z0–3, z4, z5, z6, z7, z8,
-- z9–11, z12+; geo_core/zoom.py is the definition and geo_service.migrate writes it again
-- after the migrations. The finest band (the cleaned coverage, which nothing stored can
-- make again) moves to number 7; the simplified bands are dropped here, and migrate makes
-- them again from it in the same transaction (boundaries/rebuild.py), as a load would.
-- The triggers record the change, so every tile cache drops the tiles of the old bands.

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES (7, 12, 22, 0)
    ON CONFLICT (band) DO UPDATE SET min_zoom = 12, max_zoom = 22, tolerance = 0;

UPDATE admin_unit_generalised g SET band = 7
FROM zoom_band z
WHERE z.band = g.band AND z.tolerance = 0 AND g.band <> 7;

DELETE FROM admin_unit_generalised WHERE band <> 7;
DELETE FROM zoom_band WHERE band <> 7;

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES
    (0, 0, 3, 0.088),
    (1, 4, 4, 0.044),
    (2, 5, 5, 0.022),
    (3, 6, 6, 0.011),
    (4, 7, 7, 0.0055),
    (5, 8, 8, 0.00275),
    (6, 9, 11, 0.0003);
