-- Jobs answered through the interaction alone (user installs where the bot is not a member, replies Discord
-- made private): the interaction token and the time by which the job must end, to reach the user after a
-- restart within the token's 15 minutes; and the language of the job's message.
ALTER TABLE jobs ADD COLUMN locale TEXT;
ALTER TABLE jobs ADD COLUMN interaction_token TEXT;
ALTER TABLE jobs ADD COLUMN reply_by DOUBLE PRECISION;
