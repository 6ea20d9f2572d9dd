-- Names sort in Vietnamese alphabetical order (a, ă, â, b, c, d, đ, e, ê, …) with the ICU
-- collation; a PostgreSQL built without ICU falls back to code-point order.
DO $$
BEGIN
    CREATE COLLATION IF NOT EXISTS vietnamese (provider = icu, locale = 'vi');
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR undefined_object THEN
    CREATE COLLATION IF NOT EXISTS vietnamese FROM "C";
END
$$;
