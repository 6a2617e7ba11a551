-- Per-user preferences, push channels, and an index for pruning old runs.
--
-- Booleans are INTEGER 0/1 (what sqlx binds for a bool). Timestamps are RFC
-- 3339 text as in 0001.

-- One row per user who changed a preference; a user without a row has the
-- defaults (Preferences::default(): auto sync on, every 15 minutes).
CREATE TABLE preferences (
    user_id          INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    auto_sync        INTEGER NOT NULL CHECK (auto_sync IN (0, 1)),
    interval_minutes INTEGER NOT NULL CHECK (interval_minutes > 0)
);

-- Push channels (Google watch channels). The token a delivery must carry is
-- a secret: only its SHA-256 (64 lowercase hex characters) is kept.
-- A channel goes with its calendar.
CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    calendar_id  INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    expiration   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    -- The highest X-Goog-Message-Number seen (NULL before the first).
    last_message INTEGER
);

-- A calendar's channels, and the latest expiry per calendar for the
-- scheduler (MAX reads the index's last entry).
CREATE INDEX channels_by_calendar ON channels (calendar_id, expiration);
-- Renewal and cleanup: channels expiring before a time.
CREATE INDEX channels_by_expiration ON channels (expiration);

-- Pruning history by age, across users.
CREATE INDEX runs_by_start ON runs (started_at);
