//! The queue on PostgreSQL: timestamps are `TIMESTAMPTZ`, the payload is
//! `JSONB`, and a claim locks its job with `FOR UPDATE SKIP LOCKED`, so
//! workers in any number of processes claim side by side, each skipping the
//! jobs the others are taking.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{Pool, Postgres};

use crate::JobError;
use crate::sql::{
    Arg, Backend, Columns, MIGRATIONS_TABLE, SqlQueue, backend_queries, claim_sql, job_columns,
    plain_columns, sealed,
};

/// The [`JobQueue`](crate::JobQueue) on PostgreSQL.
pub type PgQueue = SqlQueue<Postgres>;

type Query = sqlx::query::Query<'static, Postgres, PgArguments>;

/// Binds arguments as PostgreSQL holds them: timestamps as `TIMESTAMPTZ`,
/// the payload as `JSONB`, kind lists as `TEXT[]`.
fn bind(mut query: Query, args: &[Arg<'_>]) -> Query {
    for arg in args {
        query = match *arg {
            Arg::Int(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Time(value) => query.bind(value),
            Arg::Json(value) => query.bind(Json(value)),
            Arg::Kinds(kinds) => {
                query.bind(kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>())
            }
        };
    }
    query
}

impl Columns for PgRow {
    plain_columns!();

    fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, JobError> {
        crate::sql::get(self, name)
    }

    fn json(&self, name: &str) -> Result<serde_json::Value, JobError> {
        crate::sql::get::<_, Json<serde_json::Value>>(self, name).map(|json| json.0)
    }
}

impl sealed::Sealed for Postgres {}

impl Backend for Postgres {
    const QUEUE_NAME: &'static str = "PgQueue";
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// The kind filter is `array_position`, not `= ANY`: a condition on
    /// `kind` alone would match the `(key, kind)` indexes, and on a table
    /// not yet analyzed the planner then reads every pending job and sorts
    /// them (15 ms a claim at 10k pending jobs, instead of 0.3 ms).
    const CLAIM: &'static str = claim_sql!(
        kinds: "array_position($4, j.kind) IS NOT NULL",
        lock: " FOR UPDATE SKIP LOCKED",
        leases: "",
        due: "",
        running_key: "",
    );
    const LOCK_JOB: &'static str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE id = $1 FOR UPDATE"
    );
    const LOCK_PENDING: &'static str = "SELECT id, run_at, triggers FROM jobs \
         WHERE kind = $1 AND key = $2 AND state = 'pending' FOR UPDATE";
    const RECORD_FIRES: &'static str = "INSERT INTO job_fires (schedule, fire_at, created_at) \
         SELECT r->>'s', (r->>'f')::timestamptz, $2 FROM jsonb_array_elements($1) AS r \
         ON CONFLICT (schedule, fire_at) DO NOTHING RETURNING schedule";
    const ENQUEUE_MANY: &'static str = "INSERT INTO jobs (kind, key, payload, run_at, created_at) \
         SELECT r->>'k', r->>'key', r->'p', $2, $2 FROM jsonb_array_elements($1) AS r \
         ON CONFLICT (kind, key) WHERE state = 'pending' DO UPDATE SET \
         run_at = CASE WHEN excluded.run_at < jobs.run_at THEN excluded.run_at ELSE jobs.run_at END, \
         triggers = jobs.triggers + 1";

    /// Microseconds, as PostgreSQL keeps them (the time is already
    /// truncated to them).
    fn time_text(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    async fn migrate(pool: &Pool<Postgres>) -> Result<(), sqlx::migrate::MigrateError> {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(pool).await
    }

    backend_queries!();
}
