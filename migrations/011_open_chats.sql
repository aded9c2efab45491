-- ✨ Enhance chats still holding the images of their job (none, or one for each chat under way): the housekeeping
-- pass finds those a stopped process left (services/jobs/retention.py) without reading the whole jobs table.
CREATE INDEX jobs_open_chats ON jobs (created_at) WHERE kind = 'enhance' AND settled_microusd IS NULL AND image_count > 0;
