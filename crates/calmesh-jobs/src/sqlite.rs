//! The queue on SQLite: timestamps are RFC 3339 text (as in the store), the
//! payload is JSON text, and a claim is one `UPDATE … RETURNING`, which
//! SQLite runs as one write transaction (one writer at a time), so no job is
//! handed out twice.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Pool, Sqlite};

use crate::JobError;
use crate::sql::{
    Arg, Backend, Columns, MIGRATIONS_TABLE, SqlQueue, backend_queries, claim_sql, job_columns,
    plain_columns, sealed,
};

/// The [`JobQueue`](crate::JobQueue) on SQLite.
pub type SqliteQueue = SqlQueue<Sqlite>;

/// A timestamp as stored: RFC 3339, UTC, nine fractional digits (fixed width,
/// so text order is time order).
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Binds arguments as SQLite holds them: timestamps as [`ts`] text, JSON and
/// kind lists as JSON text.
fn bind(mut query: Query, args: &[Arg<'_>]) -> Query {
    for arg in args {
        query = match *arg {
            Arg::Int(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Time(value) => query.bind(ts(value)),
            Arg::Json(value) => query.bind(value.to_string()),
            Arg::Kinds(kinds) => {
                let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
                query.bind(serde_json::Value::from(names).to_string())
            }
        };
    }
    query
}

impl Columns for SqliteRow {
    plain_columns!();

    fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, JobError> {
        self.opt_text(name)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| JobError::Corrupt(format!("column {name}: {text:?}: {e}")))
            })
            .transpose()
    }

    fn json(&self, name: &str) -> Result<serde_json::Value, JobError> {
        let text = self.text(name)?;
        serde_json::from_str(&text)
            .map_err(|e| JobError::Corrupt(format!("column {name}: JSON: {e}")))
    }
}

impl sealed::Sealed for Sqlite {}

impl Backend for Sqlite {
    const QUEUE_NAME: &'static str = "SqliteQueue";
    /// Takes the write lock at once, so a read-then-write transaction never
    /// fails on a snapshot another writer made stale.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// SQLite plans without statistics unless someone runs `ANALYZE`, and
    /// may then walk every pending job and sort them: the hints keep each
    /// claim on the indexes made for it.
    const CLAIM: &'static str = claim_sql!(
        kinds: "j.kind IN (SELECT value FROM json_each($4))",
        lock: "",
        leases: " INDEXED BY jobs_leases",
        due: " INDEXED BY jobs_due",
        running_key: " INDEXED BY jobs_running_key",
    );
    /// `BEGIN IMMEDIATE` already holds every other writer off.
    const LOCK_JOB: &'static str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
    const LOCK_PENDING: &'static str = "SELECT id, run_at, triggers FROM jobs \
         WHERE kind = $1 AND key = $2 AND state = 'pending'";
    /// `WHERE true`: without it SQLite would read `ON CONFLICT` as a join
    /// constraint of the `SELECT`.
    const RECORD_FIRES: &'static str = "INSERT INTO job_fires (schedule, fire_at, created_at) \
         SELECT json_extract(value, '$.s'), json_extract(value, '$.f'), $2 \
         FROM json_each($1) WHERE true \
         ON CONFLICT (schedule, fire_at) DO NOTHING RETURNING schedule";
    const ENQUEUE_MANY: &'static str = "INSERT INTO jobs (kind, key, payload, run_at, created_at) \
         SELECT json_extract(value, '$.k'), json_extract(value, '$.key'), \
         value -> '$.p', $2, $2 FROM json_each($1) WHERE true \
         ON CONFLICT (kind, key) WHERE state = 'pending' DO UPDATE SET \
         run_at = CASE WHEN excluded.run_at < jobs.run_at THEN excluded.run_at ELSE jobs.run_at END, \
         triggers = jobs.triggers + 1";

    fn time_text(t: DateTime<Utc>) -> String {
        ts(t)
    }

    async fn migrate(pool: &Pool<Sqlite>) -> Result<(), sqlx::migrate::MigrateError> {
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(pool).await
    }

    backend_queries!();
}
