-- User names are unique whatever their letter case (issue #22): `Editor` and `editor` were
-- two users, whom people reading a history, a staff list or a sign-in form confuse. Sign-in
-- compares the name exactly (there is now only one user it could mean). A database that
-- already holds such pairs is refused, naming them, and nothing is changed: which of two
-- people keeps the name is the operator's choice, never the migration's.
DO $$
DECLARE
    clashes text;
BEGIN
    SELECT string_agg(names, '; ' ORDER BY names) INTO clashes
    FROM (SELECT string_agg(name, ', ' ORDER BY name) AS names
          FROM app_user GROUP BY lower(name) HAVING count(*) > 1) same;
    IF clashes IS NOT NULL THEN
        RAISE EXCEPTION 'user names that differ only in letter case: %', clashes
            USING HINT = 'rename all but one user of each group (UPDATE app_user SET name ='
                         ' ''new'' WHERE name = ''old'': tokens and staff links follow), then'
                         ' migrate again; nothing was changed';
    END IF;
END $$;

CREATE UNIQUE INDEX app_user_name_any_case ON app_user (lower(name));
