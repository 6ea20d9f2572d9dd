-- z9, z10 and z11 each drawn from unit geometry simplified for that zoom (issue #25).
--
-- One band served z9–z11 at the tolerance of z11 (0.0003°), so a z9 tile carried
-- about four times the vertices it can show and a z10 tile twice. Now one band per zoom,
-- half a pixel of its zoom each (geo_core/zoom.py, the one definition), as 0017 did for
-- z4–z8; a band of one zoom is also snapped to its zoom's tile grid (0019). The finest band
-- (the cleaned coverage, which nothing stored can make again) moves from number 7 to 9;
-- the z9–z11 band is dropped, and geo_service.migrate makes bands 6, 7 and 8 again from the
-- finest in the same transaction (boundaries/rebuild.py), as a load would. The triggers
-- record the change, so every tile cache drops the tiles of the old bands.

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES (9, 12, 22, 0)
    ON CONFLICT (band) DO UPDATE SET min_zoom = 12, max_zoom = 22, tolerance = 0;

UPDATE admin_unit_generalised g SET band = 9
FROM zoom_band z
WHERE z.band = g.band AND z.tolerance = 0 AND g.band <> 9;

DELETE FROM admin_unit_generalised WHERE band IN (6, 7, 8);
DELETE FROM zoom_band WHERE band IN (6, 7, 8);

INSERT INTO zoom_band (band, min_zoom, max_zoom, tolerance) VALUES
    (6, 9, 9, 0.001375),
    (7, 10, 10, 0.0006875),
    (8, 11, 11, 0.00034375);

-- (Enumeration areas keep their per-tile simplification from z9, at half a pixel of the
-- tile's own zoom: stored z9–z11 bands snapped like z5–z8 were measured and dropped, see
-- bench/README.md, "EA tiles by zoom".)
