-- calmesh's job queue, SQLite flavour. Applied by calmesh-jobs and recorded
-- in _calmesh_jobs_migrations, so it shares a database file with the store.
--
-- Timestamps are RFC 3339 text in UTC with nine fractional digits (fixed
-- width, so they sort as text), as in the store. The payload is JSON text.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    -- pull_calendar, reconcile_rule, renew_channels, cleanup. Not checked
    -- here: a newer binary may add kinds, which older workers never claim.
    kind         TEXT NOT NULL,
    -- What the job works on ("calendar:12"); pending jobs coalesce by
    -- (kind, key).
    key          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'dead')),
    -- When the job is due (pending), or was due when it was claimed.
    run_at       TEXT NOT NULL,
    -- Claims so far, including one a dead worker never finished.
    attempts     INTEGER NOT NULL DEFAULT 0,
    -- Enqueues merged into this job (1 for the one that created it).
    triggers     INTEGER NOT NULL DEFAULT 1,
    -- The holder of the lease while running (cleared otherwise).
    worker       TEXT,
    leased_until TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    -- The last claim.
    started_at   TEXT,
    -- When it became done or dead.
    finished_at  TEXT,
    CHECK ((state = 'running') = (worker IS NOT NULL AND leased_until IS NOT NULL))
);

-- Coalescing: at most one pending job per (kind, key).
CREATE UNIQUE INDEX jobs_pending_key ON jobs (key, kind) WHERE state = 'pending';
-- A pending job waits while a job with its key runs.
CREATE INDEX jobs_running_key ON jobs (key, kind) WHERE state = 'running';
-- Claims: running jobs whose lease expired, then due pending jobs, oldest
-- first.
CREATE INDEX jobs_leases ON jobs (leased_until, id) WHERE state = 'running';
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state = 'pending';
-- Cleanup of history.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'dead');
