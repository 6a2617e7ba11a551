-- Fire times of schedules already enqueued: every process may run the
-- scheduler, and the primary key lets exactly one of them enqueue a given
-- (schedule, fire time). Cleaned up with old jobs.
CREATE TABLE job_fires (
    schedule   TEXT NOT NULL,
    fire_at    TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (schedule, fire_at)
);
CREATE INDEX job_fires_created ON job_fires (created_at);
