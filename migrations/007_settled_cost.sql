-- What each job's prediction settled at (millionths of a dollar), beside the upper bound booked at admission;
-- and an index for the bot-wide daily budget, which sums every job of the last day.
ALTER TABLE jobs ADD COLUMN settled_microusd BIGINT;
CREATE INDEX jobs_created ON jobs (created_at);
