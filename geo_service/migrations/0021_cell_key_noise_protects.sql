-- The cell-key method's largest perturbation D must reach the protection range of a
-- hidden count at the threshold, else a drawn area's perturbed figure narrows a hidden
-- count more than cell suppression allows. The catalogue loader checked this; a plain
-- UPDATE did not. Now the database refuses any write that would store such a setting.
--
-- The least protecting D (as indicators/linked.py protects a hidden cell): the larger of
-- protection_absolute (NULL: half of suppress_below, or 1 without a threshold) and the
-- shares protection_lower / protection_upper (NULL: 0.1) of suppress_below.

CREATE FUNCTION least_cell_key_noise(
    suppress_below double precision,
    protection_lower double precision,
    protection_upper double precision,
    protection_absolute double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN greatest(
    coalesce(protection_absolute,
             CASE WHEN coalesce(suppress_below, 0) > 0 THEN suppress_below / 2 ELSE 1 END),
    coalesce(protection_lower, 0.1) * coalesce(suppress_below, 0),
    coalesce(protection_upper, 0.1) * coalesce(suppress_below, 0)
);

CREATE FUNCTION indicator_cell_key_noise_protects() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    least_noise double precision := least_cell_key_noise(
        NEW.suppress_below, NEW.protection_lower, NEW.protection_upper,
        NEW.protection_absolute);
BEGIN
    IF NEW.cell_key_noise IS NOT NULL AND NEW.cell_key_noise < least_noise THEN
        RAISE EXCEPTION
            'cell_key_noise % is below the protection range of its hidden counts (% each side, from suppress_below and protection_lower/upper/absolute): a perturbation that small would narrow a hidden count to about ±%; set cell_key_noise to at least % or leave it empty',
            NEW.cell_key_noise, least_noise, NEW.cell_key_noise, ceil(least_noise)
            USING ERRCODE = 'check_violation', COLUMN = 'cell_key_noise',
                  TABLE = 'indicator', SCHEMA = current_schema();
    END IF;
    RETURN NEW;
END
$$;

-- (a setting stored before this check that cannot protect stops offering the method:
-- drawn areas fall back to suppression, which hides what it must)
UPDATE indicator SET cell_key_noise = NULL
WHERE cell_key_noise < least_cell_key_noise(
    suppress_below, protection_lower, protection_upper, protection_absolute);

CREATE TRIGGER indicator_cell_key_noise_protects
    BEFORE INSERT OR UPDATE OF cell_key_noise, suppress_below, protection_lower,
        protection_upper, protection_absolute ON indicator
    FOR EACH ROW EXECUTE FUNCTION indicator_cell_key_noise_protects();
