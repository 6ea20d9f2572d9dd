-- Hardening (issue #22): four eyes follows merges, and the web service's role keeps only
-- what its requests need.

-- ---- merges in the EA history ----

-- An EA a merge absorbed names the EA that took its geometry, so that whoever drew any part
-- of a merged EA counts as one of its authors (four eyes).
ALTER TABLE ea_history ADD COLUMN merged_into bigint;
CREATE INDEX ea_history_merged_into_idx ON ea_history (merged_into)
    WHERE merged_into IS NOT NULL;
-- Merges made before: the entries of one merge were written in one transaction (one `at`)
-- by one user; the EA that stayed has the entry with a state after it.
UPDATE ea_history absorbed SET merged_into = kept.ea_id
FROM ea_history kept
WHERE absorbed.action = 'merge' AND absorbed.after IS NULL
  AND kept.action = 'merge' AND kept.after IS NOT NULL
  AND kept.at = absorbed.at AND kept.user_name = absorbed.user_name;
