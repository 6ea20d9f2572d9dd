-- Coverage report of one commune's EAs (see geo_service/ea/coverage.py).
WITH c AS (SELECT geom FROM commune_coverage WHERE vintage = %(vintage)s
           AND code = %(commune)s),
e AS (SELECT id, code, geom, households FROM enumeration_area
      WHERE census_round = %(round)s AND commune_code = %(commune)s),
gaps AS (SELECT (ST_Dump(ST_Difference(c.geom, coalesce((SELECT ST_Union(geom) FROM e),
                                                         'SRID=4326;POLYGON EMPTY'::geometry)))).geom
         FROM c)
SELECT
  (SELECT ST_Area(geom::geography) FROM c),
  (SELECT count(*) FROM e),
  (SELECT coalesce(json_agg(json_build_object('geometry', ST_AsGeoJSON(g.geom, 7)::json,
          'area_m2', round(ST_Area(g.geom::geography)::numeric, 1))), '[]')
   FROM gaps g WHERE ST_Area(g.geom::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('eas', ARRAY[a.code, b.code],
          'area_m2', round(ST_Area(ST_Intersection(a.geom, b.geom)::geography)::numeric, 1),
          'location', ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7)::json)),
          '[]')
   FROM e a JOIN e b ON a.id < b.id AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)
   WHERE ST_Area(ST_Intersection(a.geom, b.geom)::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('ea', e.code, 'area_m2',
          round(ST_Area(ST_Difference(e.geom, c.geom)::geography)::numeric, 1))), '[]')
   FROM e, c WHERE ST_Area(ST_Difference(e.geom, c.geom)::geography) > %(min_m2)s),
  (SELECT coalesce(json_agg(json_build_object('ea', code,
                                              'households', round(households::numeric))), '[]')
   FROM e WHERE households NOT BETWEEN %(hh_min)s AND %(hh_max)s)
