-- The catalogue in both languages of the pages: unit, definition, source and licence in
-- Vietnamese beside the English ones (`unit`, `description`, `source`, `licence`); empty
-- when not given (the pages then show the English text).
ALTER TABLE indicator
    ADD COLUMN unit_vi        text NOT NULL DEFAULT '',
    ADD COLUMN description_vi text NOT NULL DEFAULT '',
    ADD COLUMN source_vi      text NOT NULL DEFAULT '',
    ADD COLUMN licence_vi     text NOT NULL DEFAULT '';
