-- Issue 13: each job's estimated cost (budgets), its lease (processes that cover for each other), and a
-- server's moderation settings.

-- Millionths of a US dollar, estimated at admission; summed by the budgets and /imagine-settings usage.
ALTER TABLE jobs ADD COLUMN cost_microusd BIGINT NOT NULL DEFAULT 0;
-- The process working on the job and when its lease runs out (epoch seconds); NULL: no lease.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at DOUBLE PRECISION;

-- The adoption sweep: unfinished jobs whose lease ran out.
CREATE INDEX jobs_lease ON jobs (lease_expires_at)
    WHERE status IN ('queued', 'submitting', 'running', 'delivering');

-- blocked_words, max_safety_tolerance, log_channel_id (JSON object).
ALTER TABLE guild_settings ADD COLUMN moderation TEXT NOT NULL DEFAULT '{}';
