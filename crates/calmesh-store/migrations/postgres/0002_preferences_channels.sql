-- Per-user preferences, push channels, and an index for pruning old runs;
-- the same as migrations/sqlite/0002_preferences_channels.sql, with
-- BOOLEAN, BIGINT and TIMESTAMPTZ columns.

CREATE TABLE preferences (
    user_id          BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    auto_sync        BOOLEAN NOT NULL,
    interval_minutes BIGINT NOT NULL CHECK (interval_minutes > 0)
);

-- Only the SHA-256 (hex) of a channel's token is kept.
CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    calendar_id  BIGINT NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    expiration   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_message BIGINT
);

CREATE INDEX channels_by_calendar ON channels (calendar_id, expiration);
CREATE INDEX channels_by_expiration ON channels (expiration);

CREATE INDEX runs_by_start ON runs (started_at);
