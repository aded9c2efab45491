-- Input images (the image a Kontext edit starts from), stored once by their content: a job's input names
-- them by sha256 instead of holding the bytes, so an edit rerolled three times keeps one copy, not four.
-- Kept in both INPUT_IMAGE_MODEs: in url mode they stand in for a Discord CDN link that has expired.

CREATE TABLE input_images (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
-- sqlite:    data BLOB NOT NULL,
-- postgres:    data BYTEA NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
