//! What the SQLite and PostgreSQL queues share: [`SqlQueue`], which
//! implements [`JobQueue`] once over a sealed [`Backend`] (one per sqlx
//! database), and the row decoder.
//!
//! A backend supplies only what differs: how arguments are bound (timestamps
//! are RFC 3339 text in SQLite and `TIMESTAMPTZ` in PostgreSQL; the payload
//! is text or `JSONB`; the kinds a claim takes are a JSON array or a text
//! array), how such columns are read back, the claim statement (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), row locks inside transactions,
//! and its migrations. Statements use `$1`, `$2`, ... placeholders, which
//! both databases accept.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, SubsecRound, TimeDelta, Utc};
use sqlx::{Database, Pool};

use crate::{
    Clock, Counts, Enqueued, Failed, Fire, Job, JobError, JobId, JobKind, JobQueue, JobState,
    QueueConfig,
};

/// The table that records the queue's applied migrations: not the store's
/// (`_calmesh_migrations`) nor sqlx's default, so the queue and the store
/// migrate one database independently.
pub const MIGRATIONS_TABLE: &str = "_calmesh_jobs_migrations";

/// The columns of a [`Job`], in the order [`job_from_row`] reads them.
macro_rules! job_columns {
    () => {
        "id, kind, key, payload, state, run_at, attempts, triggers, worker, leased_until, \
         last_error, created_at, started_at, finished_at"
    };
}
pub(crate) use job_columns;

/// The claim statement around a backend's kind filter (on `j.kind`, the
/// kinds bound as `$4`), row lock, and index hints for the expired leases,
/// the due jobs and the running job of a key. `$1` worker, `$2` lease end,
/// `$3` now.
///
/// The job is the running job whose lease expired first, else the oldest due
/// pending job whose key has no running job (`COALESCE` evaluates the second
/// only when the first finds nothing). Each walks an index in the order it
/// wants and stops at the first match. In `SET`, column names read the row
/// as it was, so a takeover notes the worker it replaced.
macro_rules! claim_sql {
    (
        kinds: $kinds:literal,
        lock: $lock:literal,
        leases: $leases:literal,
        due: $due:literal,
        running_key: $running_key:literal $(,)?
    ) => {
        concat!(
            "UPDATE jobs SET state = 'running', worker = $1, leased_until = $2, \
             started_at = $3, attempts = attempts + 1, \
             last_error = CASE WHEN state = 'running' \
             THEN 'lease of worker ' || worker || ' expired' ELSE last_error END \
             WHERE id = COALESCE((SELECT j.id FROM jobs j",
            $leases,
            " WHERE j.state = 'running' AND j.leased_until <= $3 AND ",
            $kinds,
            " ORDER BY j.leased_until, j.id LIMIT 1",
            $lock,
            "), (SELECT j.id FROM jobs j",
            $due,
            " WHERE j.state = 'pending' AND j.run_at <= $3 AND ",
            $kinds,
            " AND NOT EXISTS (SELECT 1 FROM jobs r",
            $running_key,
            " WHERE r.state = 'running' AND r.key = j.key AND r.kind = j.kind) \
             ORDER BY j.run_at, j.id LIMIT 1",
            $lock,
            ")) RETURNING ",
            $crate::sql::job_columns!()
        )
    };
}
pub(crate) use claim_sql;

/// Adds a pending job or merges into the pending job with its kind and key.
/// `$1` kind, `$2` key, `$3` payload, `$4` run_at, `$5` now.
const ENQUEUE: &str = "INSERT INTO jobs (kind, key, payload, run_at, created_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (kind, key) WHERE state = 'pending' DO UPDATE SET \
     run_at = CASE WHEN excluded.run_at < jobs.run_at THEN excluded.run_at ELSE jobs.run_at END, \
     triggers = jobs.triggers + 1 \
     RETURNING id, triggers";

const RECORD_FIRE: &str = "INSERT INTO job_fires (schedule, fire_at, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (schedule, fire_at) DO NOTHING";

const FORGET_FIRES: &str = "DELETE FROM job_fires WHERE created_at < $1";

const JOB: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

const EXISTS: &str = "SELECT 1 FROM jobs WHERE id = $1";

const HEARTBEAT: &str = "UPDATE jobs SET leased_until = $3 \
     WHERE id = $1 AND state = 'running' AND worker = $2";

const COMPLETE: &str = "UPDATE jobs SET state = 'done', worker = NULL, leased_until = NULL, \
     finished_at = $3 WHERE id = $1 AND state = 'running' AND worker = $2";

/// Ends a job as dead: `$2` last error (NULL keeps it), `$3` now, `$4` how
/// many attempts to take back (a takeover that found no attempt left).
const BURY: &str = "UPDATE jobs SET state = 'dead', worker = NULL, leased_until = NULL, \
     last_error = COALESCE($2, last_error), finished_at = $3, attempts = attempts - $4 \
     WHERE id = $1";

const RESCHEDULE: &str = "UPDATE jobs SET state = 'pending', worker = NULL, leased_until = NULL, \
     last_error = $2, run_at = $3, triggers = triggers + $4 WHERE id = $1";

const UNCLAIM: &str = "UPDATE jobs SET state = 'pending', worker = NULL, leased_until = NULL, \
     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
     run_at = $2, triggers = triggers + $3 WHERE id = $1";

const REVIVE: &str = "UPDATE jobs SET state = 'pending', attempts = 0, finished_at = NULL, \
     run_at = $2, triggers = triggers + $3 WHERE id = $1";

const DELETE: &str = "DELETE FROM jobs WHERE id = $1";

const PURGE_DEAD: &str = "DELETE FROM jobs WHERE state = 'dead'";

const CLEANUP: &str = "DELETE FROM jobs WHERE state IN ('done', 'dead') AND finished_at < $1";

const LIST_ALL: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs ORDER BY id DESC LIMIT $1"
);

const LIST_STATE: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE state = $1 ORDER BY id DESC LIMIT $2"
);

const COUNTS: &str = "SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state";

const OLDEST_DUE: &str =
    "SELECT MIN(run_at) AS oldest FROM jobs WHERE state = 'pending' AND run_at <= $1";

/// How often an operation that raced a concurrent enqueue into the pending
/// slot of its key starts over (PostgreSQL only: SQLite serializes writes).
const RACE_RETRIES: u32 = 3;

/// The [`JobQueue`] on an SQL database: [`SqliteQueue`](crate::SqliteQueue)
/// is `SqlQueue<Sqlite>`, [`PgQueue`](crate::PgQueue) is `SqlQueue<Postgres>`.
pub struct SqlQueue<DB: Backend> {
    pool: Pool<DB>,
    clock: Arc<dyn Clock>,
    config: QueueConfig,
}

impl<DB: Backend> Clone for SqlQueue<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            clock: Arc::clone(&self.clock),
            config: self.config,
        }
    }
}

impl<DB: Backend> std::fmt::Debug for SqlQueue<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(DB::QUEUE_NAME)
            .field("clock", &self.clock)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> SqlQueue<DB> {
    /// The queue in the database of `pool` (for example the store's
    /// `pool()`), after bringing its tables up to date.
    pub async fn open(
        pool: Pool<DB>,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
    ) -> Result<Self, JobError> {
        Self::migrate(&pool).await?;
        Ok(Self {
            pool,
            clock,
            config,
        })
    }

    /// Brings the queue's tables up to date (recorded in
    /// [`MIGRATIONS_TABLE`]).
    pub async fn migrate(pool: &Pool<DB>) -> Result<(), JobError> {
        DB::migrate(pool).await.map_err(JobError::from)
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// How the queue retries.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Attempts before a job is dead (at least one).
    fn max_attempts(&self) -> u32 {
        self.config.max_attempts.max(1)
    }

    async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, JobError> {
        let mut conn = self.pool.acquire().await?;
        Ok(DB::execute(&mut conn, sql, args).await?)
    }

    async fn fetch_optional(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<DB::Row>, JobError> {
        let mut conn = self.pool.acquire().await?;
        Ok(DB::fetch_optional(&mut conn, sql, args).await?)
    }

    async fn fetch_all(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<DB::Row>, JobError> {
        let mut conn = self.pool.acquire().await?;
        Ok(DB::fetch_all(&mut conn, sql, args).await?)
    }

    /// The error for a worker whose lease check found nothing: the job is
    /// gone, or it is not (any more) the worker's.
    async fn not_held(&self, id: JobId, worker: &str) -> JobError {
        match self.fetch_optional(EXISTS, &[id.0.into()]).await {
            Ok(Some(_)) => JobError::LeaseLost {
                id,
                worker: worker.to_owned(),
            },
            Ok(None) => JobError::NotFound(id),
            Err(e) => e,
        }
    }

    /// One claim attempt (see [`JobQueue::claim`]).
    async fn claim_once(
        &self,
        worker: &str,
        kinds: &[JobKind],
        lease: Duration,
    ) -> Result<Option<Job>, JobError> {
        let now = self.now();
        let until = later(now, lease)?;
        let args = [worker.into(), until.into(), now.into(), Arg::Kinds(kinds)];
        self.fetch_optional(DB::CLAIM, &args)
            .await?
            .map(|row| job_from_row(&row))
            .transpose()
    }

    /// Starts a write transaction and locks the job `id` that `worker` must
    /// hold.
    async fn lock_held(
        &self,
        id: JobId,
        worker: &str,
    ) -> Result<(sqlx::Transaction<'static, DB>, Job), JobError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let job = match DB::fetch_optional(&mut tx, DB::LOCK_JOB, &[id.0.into()]).await? {
            Some(row) => job_from_row(&row)?,
            None => return Err(rolled_back(tx, JobError::NotFound(id)).await),
        };
        if job.state != JobState::Running || job.worker.as_deref() != Some(worker) {
            let error = JobError::LeaseLost {
                id,
                worker: worker.to_owned(),
            };
            return Err(rolled_back(tx, error).await);
        }
        Ok((tx, job))
    }

    async fn try_fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<Failed, JobError> {
        let (mut tx, job) = self.lock_held(id, worker).await?;
        let now = self.now();
        if job.attempts >= self.max_attempts() {
            let args = [id.0.into(), Some(error).into(), now.into(), 0.into()];
            DB::execute(&mut tx, BURY, &args).await?;
            tx.commit().await?;
            return Ok(Failed::Dead);
        }
        let wait = self
            .config
            .backoff
            .wait_with(job.attempts, retry_after, &mut rand::rng());
        // The wait is the provider's or the backoff's: a trigger merged in
        // here waits for it too.
        let run_at = later(now, wait)?;
        let triggers = absorb_pending::<DB>(&mut tx, &job)
            .await?
            .map_or(0, |p| p.triggers);
        let args = [
            id.0.into(),
            Some(error).into(),
            run_at.into(),
            triggers.into(),
        ];
        DB::execute(&mut tx, RESCHEDULE, &args).await?;
        tx.commit().await?;
        Ok(Failed::Retry { run_at })
    }

    async fn try_release(&self, id: JobId, worker: &str) -> Result<(), JobError> {
        let (mut tx, job) = self.lock_held(id, worker).await?;
        let (run_at, triggers) = match absorb_pending::<DB>(&mut tx, &job).await? {
            Some(other) => (job.run_at.min(other.run_at), other.triggers),
            None => (job.run_at, 0),
        };
        DB::execute(
            &mut tx,
            UNCLAIM,
            &[id.0.into(), run_at.into(), triggers.into()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_retry(&self, id: JobId) -> Result<(), JobError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let job = match DB::fetch_optional(&mut tx, DB::LOCK_JOB, &[id.0.into()]).await? {
            Some(row) => job_from_row(&row)?,
            None => return Err(rolled_back(tx, JobError::NotFound(id)).await),
        };
        if job.state != JobState::Dead {
            let error = JobError::WrongState {
                id,
                state: job.state,
                expected: JobState::Dead,
            };
            return Err(rolled_back(tx, error).await);
        }
        let now = self.now();
        let (run_at, triggers) = match absorb_pending::<DB>(&mut tx, &job).await? {
            Some(other) => (now.min(other.run_at), other.triggers),
            None => (now, 0),
        };
        DB::execute(
            &mut tx,
            REVIVE,
            &[id.0.into(), run_at.into(), triggers.into()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<DB: Backend> JobQueue for SqlQueue<DB> {
    fn now(&self) -> DateTime<Utc> {
        stored(self.clock.now())
    }

    async fn enqueue(
        &self,
        kind: JobKind,
        key: &str,
        payload: &serde_json::Value,
        run_at: Option<DateTime<Utc>>,
    ) -> Result<Enqueued, JobError> {
        let now = self.now();
        let run_at = in_range(run_at.map_or(now, stored))?;
        let args = [
            kind.name().into(),
            key.into(),
            Arg::Json(payload),
            run_at.into(),
            now.into(),
        ];
        let row = self
            .fetch_optional(ENQUEUE, &args)
            .await?
            .ok_or_else(|| JobError::Corrupt("enqueue returned no row".to_owned()))?;
        Ok(Enqueued {
            id: JobId(row.int("id")?),
            coalesced: row.int("triggers")? > 1,
        })
    }

    async fn enqueue_fire(
        &self,
        kind: JobKind,
        key: &str,
        payload: &serde_json::Value,
        schedule: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<Option<Enqueued>, JobError> {
        let now = self.now();
        let fire = in_range(stored(fire_at))?;
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let recorded = DB::execute(
            &mut tx,
            RECORD_FIRE,
            &[schedule.into(), fire.into(), now.into()],
        )
        .await?;
        if recorded == 0 {
            // Another process (or an earlier tick) enqueued this fire.
            tx.rollback().await?;
            return Ok(None);
        }
        let args = [
            kind.name().into(),
            key.into(),
            Arg::Json(payload),
            in_range(now)?.into(),
            now.into(),
        ];
        let row = DB::fetch_optional(&mut tx, ENQUEUE, &args)
            .await?
            .ok_or_else(|| JobError::Corrupt("enqueue returned no row".to_owned()))?;
        tx.commit().await?;
        Ok(Some(Enqueued {
            id: JobId(row.int("id")?),
            coalesced: row.int("triggers")? > 1,
        }))
    }

    async fn enqueue_fires(&self, fires: &[Fire]) -> Result<u64, JobError> {
        /// Fires per transaction: a few hundred kilobytes of JSON.
        const CHUNK: usize = 2000;
        let now = self.now();
        in_range(now)?;
        // A schedule or a job key twice in one statement is not allowed
        // (the second would meet the first's row): such fires go one by
        // one, after the batches.
        let mut seen_schedules = HashSet::new();
        let mut seen_keys = HashSet::new();
        let (batched, single): (Vec<&Fire>, Vec<&Fire>) = fires.iter().partition(|f| {
            seen_schedules.insert(f.schedule.as_str()) && seen_keys.insert((f.kind, f.key.as_str()))
        });
        let mut new = 0;
        for chunk in batched.chunks(CHUNK) {
            let mut records = Vec::with_capacity(chunk.len());
            for fire in chunk {
                let at = in_range(stored(fire.fire_at))?;
                records.push(serde_json::json!({"s": fire.schedule, "f": DB::time_text(at)}));
            }
            let records = serde_json::Value::Array(records);
            let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
            let recorded: HashSet<String> = DB::fetch_all(
                &mut tx,
                DB::RECORD_FIRES,
                &[Arg::Json(&records), now.into()],
            )
            .await?
            .iter()
            .map(|row| row.text("schedule"))
            .collect::<Result<_, _>>()?;
            let jobs: Vec<serde_json::Value> = chunk
                .iter()
                .filter(|f| recorded.contains(&f.schedule))
                .map(|f| serde_json::json!({"k": f.kind.name(), "key": f.key, "p": f.payload}))
                .collect();
            if jobs.is_empty() {
                tx.rollback().await?;
                continue;
            }
            let jobs = serde_json::Value::Array(jobs);
            DB::execute(&mut tx, DB::ENQUEUE_MANY, &[Arg::Json(&jobs), now.into()]).await?;
            tx.commit().await?;
            new += recorded.len() as u64;
        }
        new += crate::fires_one_by_one(self, single.into_iter()).await?;
        Ok(new)
    }

    async fn claim(
        &self,
        worker: &str,
        kinds: Option<&[JobKind]>,
        lease: Duration,
    ) -> Result<Option<Job>, JobError> {
        let kinds = kinds.unwrap_or(JobKind::ALL);
        loop {
            let Some(job) = self.claim_once(worker, kinds, lease).await? else {
                return Ok(None);
            };
            if job.attempts <= self.max_attempts() {
                return Ok(Some(job));
            }
            // Taken over after its last attempt: its worker died every time.
            let args = [
                job.id.0.into(),
                None::<&str>.into(),
                self.now().into(),
                1.into(),
            ];
            self.execute(BURY, &args).await?;
        }
    }

    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<DateTime<Utc>, JobError> {
        let until = later(self.now(), lease)?;
        let changed = self
            .execute(HEARTBEAT, &[id.0.into(), worker.into(), until.into()])
            .await?;
        if changed == 0 {
            return Err(self.not_held(id, worker).await);
        }
        Ok(until)
    }

    async fn complete(&self, id: JobId, worker: &str) -> Result<(), JobError> {
        let changed = self
            .execute(COMPLETE, &[id.0.into(), worker.into(), self.now().into()])
            .await?;
        if changed == 0 {
            return Err(self.not_held(id, worker).await);
        }
        Ok(())
    }

    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_after: Option<Duration>,
    ) -> Result<Failed, JobError> {
        retry_races(|| self.try_fail(id, worker, error, retry_after)).await
    }

    async fn release(&self, id: JobId, worker: &str) -> Result<(), JobError> {
        retry_races(|| self.try_release(id, worker)).await
    }

    async fn retry(&self, id: JobId) -> Result<(), JobError> {
        retry_races(|| self.try_retry(id)).await
    }

    async fn purge_dead(&self) -> Result<u64, JobError> {
        self.execute(PURGE_DEAD, &[]).await
    }

    async fn job(&self, id: JobId) -> Result<Job, JobError> {
        match self.fetch_optional(JOB, &[id.0.into()]).await? {
            Some(row) => job_from_row(&row),
            None => Err(JobError::NotFound(id)),
        }
    }

    async fn list(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>, JobError> {
        let limit = i64::from(limit);
        let rows = match state {
            Some(state) => {
                self.fetch_all(LIST_STATE, &[state.name().into(), limit.into()])
                    .await?
            }
            None => self.fetch_all(LIST_ALL, &[limit.into()]).await?,
        };
        rows.iter().map(job_from_row).collect()
    }

    async fn counts(&self) -> Result<Counts, JobError> {
        let mut counts = Counts::default();
        for row in self.fetch_all(COUNTS, &[]).await? {
            // Kinds of a newer build: not this build's to count.
            let Ok(kind) = row.text("kind")?.parse::<JobKind>() else {
                continue;
            };
            let state = decode_state(&row.text("state")?)?;
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            counts.by_kind.entry(kind).or_default().insert(state, n);
        }
        Ok(counts)
    }

    async fn oldest_pending_age(&self, now: DateTime<Utc>) -> Result<Option<Duration>, JobError> {
        let now = stored(now);
        let Some(row) = self.fetch_optional(OLDEST_DUE, &[now.into()]).await? else {
            return Ok(None);
        };
        Ok(row
            .opt_time("oldest")?
            .map(|oldest| (now - oldest).to_std().unwrap_or_default()))
    }

    async fn cleanup(&self, finished_before: DateTime<Utc>) -> Result<u64, JobError> {
        let before = stored(finished_before);
        // Fire records only need to outlive the window in which two
        // schedulers could both see the same fire time.
        self.execute(FORGET_FIRES, &[before.into()]).await?;
        self.execute(CLEANUP, &[before.into()]).await
    }
}

/// Ends a transaction that found it has nothing to do, now: a transaction
/// merely dropped is rolled back only when its connection is next used, and
/// until then it keeps its row locks (PostgreSQL, where a claim's
/// `SKIP LOCKED` would pass the job by) or the write lock (SQLite's
/// `BEGIN IMMEDIATE`, where other writers would wait).
async fn rolled_back<DB: Backend>(tx: sqlx::Transaction<'static, DB>, error: JobError) -> JobError {
    match tx.rollback().await {
        Ok(()) => error,
        Err(e) => JobError::Database(e),
    }
}

/// Runs `op` again when it lost a race for its key's pending slot (a unique
/// violation: an enqueue committed a pending job between the check and the
/// update), so that the next try merges with that job.
async fn retry_races<T, F, Fut>(mut op: F) -> Result<T, JobError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, JobError>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(JobError::Database(sqlx::Error::Database(e)))
                if e.is_unique_violation() && tries < RACE_RETRIES =>
            {
                tries += 1;
            }
            result => return result,
        }
    }
}

/// The pending job merged into another job of its key.
struct Absorbed {
    run_at: DateTime<Utc>,
    triggers: i64,
}

/// Deletes the pending job with `job`'s kind and key, if there is one, so
/// that `job` can take the key's pending slot; returns what `job` takes over
/// from it.
async fn absorb_pending<DB: Backend>(
    conn: &mut DB::Connection,
    job: &Job,
) -> Result<Option<Absorbed>, JobError> {
    let args = [job.kind.name().into(), job.key.as_str().into()];
    let Some(row) = DB::fetch_optional(conn, DB::LOCK_PENDING, &args).await? else {
        return Ok(None);
    };
    let other = row.int("id")?;
    let absorbed = Absorbed {
        run_at: row.time("run_at")?,
        triggers: row.int("triggers")?,
    };
    DB::execute(conn, DELETE, &[other.into()]).await?;
    Ok(Some(absorbed))
}

// ---------------------------------------------------------------------------
// Time

/// The instant the databases keep for `t`: PostgreSQL keeps microseconds,
/// and SQLite is held to the same so both behave alike.
fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// `t` when it is a time both databases keep in order (SQLite's text times
/// sort only with four-digit years).
fn in_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, JobError> {
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(JobError::TimeOutOfRange(t.to_string()))
    }
}

/// `from + wait`, when it can be stored.
fn later(from: DateTime<Utc>, wait: Duration) -> Result<DateTime<Utc>, JobError> {
    TimeDelta::from_std(wait)
        .ok()
        .and_then(|delta| from.checked_add_signed(delta))
        .ok_or_else(|| JobError::TimeOutOfRange(format!("{from} + {wait:?}")))
        .and_then(in_range)
        .map(stored)
}

// ---------------------------------------------------------------------------
// What a backend supplies

pub(crate) mod sealed {
    /// Only this crate implements [`Backend`](super::Backend).
    pub trait Sealed {}
}

/// A database the queue runs on: implemented for `sqlx::Sqlite` and
/// `sqlx::Postgres` only (sealed).
pub trait Backend: Database<Row: Columns> + sealed::Sealed + Sync {
    /// The queue's name in `Debug` output.
    const QUEUE_NAME: &'static str;
    /// Starts a transaction that reads, then writes.
    const BEGIN_WRITE: &'static str;
    /// The claim (see `claim_sql!`).
    const CLAIM: &'static str;
    /// Selects the job `$1` ([`job_columns!`]) and keeps other writers of it
    /// waiting until the transaction ends.
    const LOCK_JOB: &'static str;
    /// Selects `id, run_at, triggers` of the pending job of kind `$1` and
    /// key `$2`, locked like [`Backend::LOCK_JOB`].
    const LOCK_PENDING: &'static str;
    /// Records the fires in the JSON array `$1` (objects `{"s": schedule,
    /// "f": fire time as [`Backend::time_text`]}`) at `$2`, skipping those
    /// recorded before; returns the `schedule` of each new one.
    const RECORD_FIRES: &'static str;
    /// Enqueues the jobs in the JSON array `$1` (objects `{"k": kind,
    /// "key": key, "p": payload}`), due and created at `$2`, coalescing as
    /// [`ENQUEUE`] does. Kinds and keys are distinct within the array.
    const ENQUEUE_MANY: &'static str;

    /// An instant as [`Backend::RECORD_FIRES`] reads it from JSON (as the
    /// database compares it with what a bound time stored).
    fn time_text(t: DateTime<Utc>) -> String;

    /// Applies the queue's migrations, recorded in [`MIGRATIONS_TABLE`].
    fn migrate(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send;

    /// Runs a statement; returns the number of rows it changed.
    fn execute(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs a query for at most one row.
    fn fetch_optional(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    /// Runs a query for all its rows.
    fn fetch_all(
        conn: &mut Self::Connection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;
}

pub(crate) use calmesh_store::sql_backend_queries as backend_queries;

/// One statement argument. Backends bind each kind as their columns hold it.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// An integer.
    Int(i64),
    /// Text or NULL.
    Text(Option<&'a str>),
    /// An instant.
    Time(DateTime<Utc>),
    /// A JSON document (the payload).
    Json(&'a serde_json::Value),
    /// The kinds a claim takes.
    Kinds(&'a [JobKind]),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::Text(value)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(value)
    }
}

/// Reads the columns of a row.
pub trait Columns {
    /// An integer column.
    fn int(&self, name: &str) -> Result<i64, JobError>;
    /// A text column.
    fn text(&self, name: &str) -> Result<String, JobError>;
    /// A nullable text column.
    fn opt_text(&self, name: &str) -> Result<Option<String>, JobError>;
    /// A nullable timestamp column.
    fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, JobError>;
    /// A JSON column.
    fn json(&self, name: &str) -> Result<serde_json::Value, JobError>;

    /// A timestamp column.
    fn time(&self, name: &str) -> Result<DateTime<Utc>, JobError> {
        self.opt_time(name)?
            .ok_or_else(|| JobError::Corrupt(format!("column {name} is NULL")))
    }
}

/// The [`Columns`] methods that read a plain type the same way on every
/// backend (a row type's impl adds `opt_time` and `json`).
macro_rules! plain_columns {
    () => {
        fn int(&self, name: &str) -> Result<i64, JobError> {
            $crate::sql::get(self, name)
        }
        fn text(&self, name: &str) -> Result<String, JobError> {
            $crate::sql::get(self, name)
        }
        fn opt_text(&self, name: &str) -> Result<Option<String>, JobError> {
            $crate::sql::get(self, name)
        }
    };
}
pub(crate) use plain_columns;

/// One column, decoded; a column that does not decode is a corrupt row.
pub(crate) fn get<'r, R, T>(row: &'r R, name: &str) -> Result<T, JobError>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
{
    row.try_get(name)
        .map_err(|e| JobError::Corrupt(format!("column {name}: {e}")))
}

// ---------------------------------------------------------------------------
// Decoding

fn decode_state(name: &str) -> Result<JobState, JobError> {
    name.parse()
        .map_err(|_| JobError::Corrupt(format!("unknown state {name:?}")))
}

/// A job from a row of [`job_columns!`].
fn job_from_row(row: &impl Columns) -> Result<Job, JobError> {
    let kind = row.text("kind")?;
    let count = |name: &str| {
        row.int(name).and_then(|n| {
            u64::try_from(n).map_err(|_| JobError::Corrupt(format!("column {name} is {n}")))
        })
    };
    Ok(Job {
        id: JobId(row.int("id")?),
        kind: kind
            .parse()
            .map_err(|_| JobError::Corrupt(format!("unknown kind {kind:?}")))?,
        key: row.text("key")?,
        payload: row.json("payload")?,
        state: decode_state(&row.text("state")?)?,
        run_at: row.time("run_at")?,
        attempts: u32::try_from(count("attempts")?).unwrap_or(u32::MAX),
        triggers: count("triggers")?,
        worker: row.opt_text("worker")?,
        leased_until: row.opt_time("leased_until")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.time("created_at")?,
        started_at: row.opt_time("started_at")?,
        finished_at: row.opt_time("finished_at")?,
    })
}
