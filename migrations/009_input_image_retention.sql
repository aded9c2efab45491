-- When each input image was last used (stored, or sent again by a reroll) and its size in bytes: it is kept for
-- INPUT_IMAGE_RETENTION_DAYS after its last use, and INPUT_IMAGE_STORE_MB caps the total without reading the bytes.
ALTER TABLE input_images ADD COLUMN used_at DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE input_images ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
-- sqlite: UPDATE input_images SET used_at = created_at, size_bytes = length(data);
-- postgres: UPDATE input_images SET used_at = created_at, size_bytes = octet_length(data);
CREATE INDEX input_images_used ON input_images (used_at);
