-- Issue 21: credits people buy through Discord's Premium Apps (off unless the operator names SKUs).

-- Every entitlement the bot credited, once (its id is the key, so two processes crediting the same one
-- credit it once): a credit pack adds `micros` to its buyer's balance; a server subscription gives its server
-- `micros` per 30 days while it runs (until `ends_at`, epoch seconds; NULL: open-ended). `consumed_at` is when
-- Discord accepted the consume (NULL: to retry); `revoked_at` when it was deleted or refunded (it counts no more).
CREATE TABLE credit_entitlements (
    entitlement_id BIGINT PRIMARY KEY,
    sku_id         BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    user_id        BIGINT,
    guild_id       BIGINT,
    micros         BIGINT NOT NULL,
    credited_at    DOUBLE PRECISION NOT NULL,
    ends_at        DOUBLE PRECISION,
    consumed_at    DOUBLE PRECISION,
    revoked_at     DOUBLE PRECISION,
    CONSTRAINT credit_entitlements_kind_known CHECK (kind IN ('pack', 'subscription')),
    CONSTRAINT credit_entitlements_micros_positive CHECK (micros >= 0)
);
CREATE INDEX credit_entitlements_user ON credit_entitlements (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX credit_entitlements_guild ON credit_entitlements (guild_id) WHERE guild_id IS NOT NULL;
CREATE INDEX credit_entitlements_unconsumed ON credit_entitlements (credited_at)
    WHERE consumed_at IS NULL AND kind = 'pack';

-- What paid for a job when credits are on: 'balance' (its member's) or 'subscription' (its server's); NULL:
-- nothing (credits off, or a free job). What it counts (COUNTED_COST) is what it draws: the booking while it
-- runs, then what it settled at, so credits pay for exactly the images made.
ALTER TABLE jobs ADD COLUMN paid_with TEXT;
-- A balance sums every job its member paid with it, at each admission: these indexes hold every column the sum
-- reads (COUNTED_COST), so it never reads the jobs' rows (a member with 10,000 paid jobs: 16 ms an admission on
-- SQLite instead of 25).
CREATE INDEX jobs_paid_user ON jobs (user_id, paid_with, status, prediction_id, settled_microusd, cost_microusd)
    WHERE paid_with IS NOT NULL;
CREATE INDEX jobs_paid_guild ON jobs (guild_id, paid_with, created_at, status, prediction_id, settled_microusd,
    cost_microusd) WHERE paid_with IS NOT NULL;
