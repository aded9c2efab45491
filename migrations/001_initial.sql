-- The first schema: jobs, guild settings, user preferences and a key/value table.
-- Plain SQL for both SQLite and PostgreSQL (see services/store/base.py for the rules).
-- Times are epoch seconds (DOUBLE PRECISION), Discord ids BIGINT, JSON documents TEXT.

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    user_id       BIGINT NOT NULL,
    channel_id    BIGINT NOT NULL,
    guild_id      BIGINT,
    shard_id      INTEGER NOT NULL,
    model         TEXT NOT NULL,
    input         TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    parent_id     TEXT REFERENCES jobs (id) ON DELETE SET NULL,
    message_id    BIGINT,
    prediction_id TEXT,
    error         TEXT,
    submitted_at  DOUBLE PRECISION,
    completed_at  DOUBLE PRECISION,
    delivered_at  DOUBLE PRECISION,
    image_count   INTEGER NOT NULL DEFAULT 0,
    extra         TEXT NOT NULL DEFAULT '{}',
    CONSTRAINT jobs_status_known CHECK (
        status IN ('queued', 'submitting', 'running', 'delivering', 'succeeded', 'failed', 'canceled')
    ),
    CONSTRAINT jobs_kind_known CHECK (kind IN ('imagine', 'reroll', 'edit')),
    CONSTRAINT jobs_image_count_positive CHECK (image_count >= 0)
);

-- job_by_message: the reply a button or context menu was used on.
CREATE INDEX jobs_message ON jobs (message_id, created_at) WHERE message_id IS NOT NULL;
-- active_jobs / count_active: unfinished work, by shard and age.
CREATE INDEX jobs_status_shard ON jobs (status, shard_id, created_at);
-- count_active, images_since(user_id=...), last_job_at: per-user history.
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
-- images_since(guild_id=...): per-guild daily quota.
CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at) WHERE guild_id IS NOT NULL;
-- Keeps ON DELETE SET NULL of parent_id cheap.
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE guild_settings (
    guild_id       BIGINT PRIMARY KEY,
    defaults       TEXT NOT NULL DEFAULT '{}',
    allowed_models TEXT,
    limits         TEXT NOT NULL DEFAULT '{}',
    updated_at     DOUBLE PRECISION NOT NULL
);

CREATE TABLE user_prefs (
    user_id    BIGINT PRIMARY KEY,
    prefs      TEXT NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
