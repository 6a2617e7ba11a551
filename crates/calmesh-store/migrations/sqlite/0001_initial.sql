-- calmesh's store, SQLite flavour.
--
-- Ids are INTEGER PRIMARY KEY (rowid aliases), shown to the rest of calmesh as
-- the decimal strings of calmesh_core::ids. Timestamps are RFC 3339 text in
-- UTC with nine fractional digits ("2025-01-02T03:04:05.123456789Z"): fixed
-- width, so they sort as text, and exact through chrono. JSON columns are
-- TEXT holding serde_json output.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    email      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    api_base   TEXT,
    token_url  TEXT,
    status     TEXT NOT NULL DEFAULT 'ok'
               CHECK (status IN ('ok', 'needs_reauth', 'error')),
    last_error TEXT,
    -- AES-256-GCM of the serde_json of Credentials: v1:<base64(nonce||ct)>.
    secret     TEXT NOT NULL,
    -- First 16 hex characters of the SHA-256 of the key that sealed `secret`.
    key_id     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, provider, email)
);

CREATE TABLE calendars (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    remote_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    time_zone    TEXT,
    cursor       TEXT,
    last_sync_at TEXT,
    last_error   TEXT,
    UNIQUE (account_id, remote_id)
);

-- The item cache: one row per provider resource (single event, series
-- master, or exception with parent_id = its master's remote id).
CREATE TABLE entries (
    calendar_id INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    remote_id   TEXT NOT NULL,
    parent_id   TEXT,
    etag        TEXT,
    updated     TEXT,
    ics         TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (calendar_id, remote_id)
);

CREATE INDEX entries_by_parent ON entries (calendar_id, parent_id);

CREATE TABLE rules (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    config     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'active'
               CHECK (state IN ('active', 'needs_confirmation', 'paused')),
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);

-- A rule's memory of what it wrote. Removing the rule takes its links; a
-- calendar that links still name cannot be removed (the items calmesh wrote
-- must be cleaned up, or the links dropped on purpose, first: invariant 1).
CREATE TABLE links (
    rule_id            INTEGER NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    source_calendar_id INTEGER NOT NULL REFERENCES calendars (id),
    source_id          TEXT NOT NULL,
    target_calendar_id INTEGER NOT NULL REFERENCES calendars (id),
    target_id          TEXT NOT NULL,
    generation         INTEGER NOT NULL,
    hash               TEXT NOT NULL,
    etag               TEXT,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (rule_id, source_calendar_id, source_id, target_calendar_id)
);

CREATE INDEX links_by_target ON links (target_calendar_id);
-- Foreign keys are checked from the child's side on every parent delete.
CREATE INDEX links_by_source_calendar ON links (source_calendar_id);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Kept (without its rule) when the rule is removed: history stays.
    rule_id     INTEGER REFERENCES rules (id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT,
    report      TEXT,
    api_calls   INTEGER
);

CREATE INDEX runs_by_user ON runs (user_id, started_at DESC, id DESC);
CREATE INDEX runs_by_rule ON runs (rule_id);
