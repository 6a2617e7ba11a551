//! calmesh's durable job queue.
//!
//! Triggers (the scheduler, push notifications, "Sync now", API writes)
//! [`enqueue`](JobQueue::enqueue) jobs; workers [`claim`](JobQueue::claim)
//! them under a lease, renew it with [`heartbeat`](JobQueue::heartbeat), and
//! end each with [`complete`](JobQueue::complete),
//! [`fail`](JobQueue::fail) or [`release`](JobQueue::release). The queue
//! lives in the same database as the store, in a table of its own (`jobs`)
//! with migrations of its own, recorded in `_calmesh_jobs_migrations`.
//!
//! - **Coalescing.** Pending jobs are unique by (kind, key): a hundred
//!   notifications for one calendar make one pull. A key whose job is
//!   running may get one more pending job, so a trigger that arrives during a
//!   run is not lost; that job waits until the running one ends (one job per
//!   key runs at a time).
//! - **Leases.** A claim holds the job until `leased_until`; a worker that
//!   dies stops renewing it, and once it expires the next claim takes the job
//!   over (counting the lost run as an attempt).
//! - **Retries.** A failure reschedules the job after a truncated exponential
//!   backoff with jitter ([`Backoff`]), or after the provider's `Retry-After`
//!   when that is longer; after [`QueueConfig::max_attempts`] the job is
//!   `dead` with its last error until someone retries or purges it.
//! - **History.** Done and dead jobs stay, with their attempts, last error
//!   and finish time, until [`cleanup`](JobQueue::cleanup).
//! - **Time** comes from a [`Clock`], so tests move a [`ManualClock`] instead
//!   of sleeping.
//!
//! [`SqliteQueue`] claims with one `UPDATE … RETURNING` (SQLite has one
//! writer at a time); [`PgQueue`] claims with `FOR UPDATE SKIP LOCKED`, so
//! any number of workers in any number of processes share the queue.
//!
//! Why our own tables and not apalis (the design's first candidate): we need
//! coalescing by key (one pending job per calendar or rule however many
//! triggers arrive, plus one more while it runs), queue state that the
//! dashboard and CLI read and act on (list, count, retry, purge, the age of
//! the oldest due job), leases with takeover, and run-at. apalis' storages
//! give no coalescing by key and keep their state in their own schema, and
//! its `setup()` sets `PRAGMA synchronous=OFF` and shares sqlx's migrations
//! table; the tables here are one table and a handful of statements.
//!
//! ```no_run
//! # async fn example() -> Result<(), calmesh_jobs::JobError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use calmesh_jobs::{JobKind, JobQueue, QueueConfig, SqliteQueue, SystemClock};
//!
//! // Usually the store's pool: `SqliteStore::pool()` or `PgStore::pool()`.
//! let pool = sqlx::SqlitePool::connect("sqlite://calmesh.db?mode=rwc").await?;
//! let queue = SqliteQueue::open(pool, Arc::new(SystemClock), QueueConfig::default()).await?;
//! let payload = serde_json::json!({ "calendar": "12" });
//! queue.enqueue(JobKind::PullCalendar, "calendar:12", &payload, None).await?;
//! if let Some(job) = queue.claim("worker-1", None, Duration::from_secs(60)).await? {
//!     // ... do the work, calling heartbeat() before the lease ends ...
//!     queue.complete(job.id, "worker-1").await?;
//! }
//! # Ok(())
//! # }
//! ```

mod backoff;
mod error;
mod postgres;
pub mod schedule;
pub mod scheduler;
mod sql;
mod sqlite;
mod types;

pub use backoff::Backoff;
pub use calmesh_clock::{Clock, ManualClock, SystemClock};
pub use error::JobError;
pub use postgres::PgQueue;
pub use sql::{MIGRATIONS_TABLE, SqlQueue};
pub use sqlite::SqliteQueue;
pub use types::{Counts, Enqueued, Failed, Fire, Job, JobId, JobKind, JobState};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How a queue retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// The wait after a failure.
    pub backoff: Backoff,
    /// Attempts before a job is dead (a claim whose worker died counts); 0
    /// counts as 1.
    pub max_attempts: u32,
}

impl Default for QueueConfig {
    /// The default backoff (5 s doubling to 1 h) and 8 attempts.
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            max_attempts: 8,
        }
    }
}

/// [`JobQueue::enqueue_fire`] for each fire in turn; returns how many were
/// new.
pub(crate) async fn fires_one_by_one<'a, Q: JobQueue + ?Sized>(
    queue: &Q,
    fires: impl Iterator<Item = &'a Fire> + Send,
) -> Result<u64, JobError> {
    let mut new = 0;
    for fire in fires {
        let enqueued = queue
            .enqueue_fire(
                fire.kind,
                &fire.key,
                &fire.payload,
                &fire.schedule,
                fire.fire_at,
            )
            .await?;
        new += u64::from(enqueued.is_some());
    }
    Ok(new)
}

/// The job queue. Every method is atomic (one statement or transaction;
/// `claim` may bury dead jobs on its way) and reads the time from the
/// queue's [`Clock`], except those that take a time as an argument.
///
/// A worker id names one claiming task (for example `host:pid:task`): the
/// lease is checked by id, so two tasks sharing an id could each believe
/// they hold a job that one of them took over.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// The time as the queue's clock shows it.
    fn now(&self) -> DateTime<Utc>;

    /// Adds a job due at `run_at` (None: now), unless a pending job of this
    /// kind and key exists: then that job absorbs the trigger (its `run_at`
    /// moves earlier when this one is earlier; its payload stays) and
    /// `coalesced` is true. A running job does not absorb triggers, so one
    /// that arrives during a run gets a pending job of its own.
    async fn enqueue(
        &self,
        kind: JobKind,
        key: &str,
        payload: &serde_json::Value,
        run_at: Option<DateTime<Utc>>,
    ) -> Result<Enqueued, JobError>;

    /// Enqueues the job for one fire time of a schedule (a rule's cron, the
    /// hourly channel renewal, the daily cleanup), at most once per
    /// (`schedule`, `fire_at`) however many schedulers ask: the first one
    /// records the fire and enqueues (coalescing as [`JobQueue::enqueue`]
    /// does), in one transaction; the others get None.
    async fn enqueue_fire(
        &self,
        kind: JobKind,
        key: &str,
        payload: &serde_json::Value,
        schedule: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<Option<Enqueued>, JobError>;

    /// [`JobQueue::enqueue_fire`] for many fires at once (the scheduler's
    /// due calendars): same outcome, a few statements per thousand fires
    /// instead of a transaction each. Returns how many were new (enqueued
    /// or coalesced into a pending job).
    async fn enqueue_fires(&self, fires: &[Fire]) -> Result<u64, JobError> {
        fires_one_by_one(self, fires.iter()).await
    }

    /// Takes a job of these kinds (None: every kind this build knows), or
    /// returns None when none is due: first a running job whose lease
    /// expired (its worker is presumed dead), oldest expiry first; otherwise
    /// the pending job with the earliest `run_at` that has come, among
    /// those whose key has no running job. The job becomes `running`, held
    /// by `worker` until now + `lease`, with one more attempt.
    ///
    /// A job taken over after its last allowed attempt becomes dead instead
    /// (a job that kills its worker cannot take the fleet down forever), and
    /// the claim goes on to the next.
    async fn claim(
        &self,
        worker: &str,
        kinds: Option<&[JobKind]>,
        lease: Duration,
    ) -> Result<Option<Job>, JobError>;

    /// Extends the lease of a running job the worker holds to now + `lease`;
    /// returns the new end. [`JobError::LeaseLost`] when another worker took
    /// it over (the caller must stop).
    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<DateTime<Utc>, JobError>;

    /// Marks a job the worker holds as done.
    async fn complete(&self, id: JobId, worker: &str) -> Result<(), JobError>;

    /// Records a failed attempt of a job the worker holds. Before the last
    /// attempt the job goes back to pending after the backoff, or after
    /// `retry_after` when that is longer; after it, the job is dead. The
    /// error is kept as `last_error` either way.
    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<Failed, JobError>;

    /// Puts a job the worker holds back to pending without counting the
    /// attempt (a graceful shutdown).
    async fn release(&self, id: JobId, worker: &str) -> Result<(), JobError>;

    /// Takes a dead job back to pending, due now, with its attempts reset.
    ///
    /// When a job goes back to pending (retry, release or fail) and another
    /// job of its kind and key is already pending, the two merge into the
    /// older: the other is deleted and its triggers counted here.
    async fn retry(&self, id: JobId) -> Result<(), JobError>;

    /// Deletes every dead job; returns how many.
    async fn purge_dead(&self) -> Result<u64, JobError>;

    /// One job.
    async fn job(&self, id: JobId) -> Result<Job, JobError>;

    /// Jobs in this state (None: all), newest first, at most `limit`.
    async fn list(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>, JobError>;

    /// How many jobs are in each state, by kind.
    async fn counts(&self) -> Result<Counts, JobError>;

    /// How long the longest-waiting due pending job has been due at `now`
    /// (now minus its `run_at`); None when no pending job is due.
    async fn oldest_pending_age(&self, now: DateTime<Utc>) -> Result<Option<Duration>, JobError>;

    /// Deletes done and dead jobs that finished before `finished_before`;
    /// returns how many.
    async fn cleanup(&self, finished_before: DateTime<Utc>) -> Result<u64, JobError>;
}
