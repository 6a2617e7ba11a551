//! Helpers for tests that run against a real PostgreSQL server.
//!
//! The server comes from `CALMESH_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`; `scripts/test` sets it). Each
//! test takes a [`PgTestSchema`]: a schema of its own in that database, which
//! the URL it hands out puts first on the search path. Tests in parallel
//! processes (cargo nextest) therefore never see each other's tables, and
//! nothing needs the right to create databases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

use crate::StoreError;

/// The environment variable naming the PostgreSQL server tests use.
pub const TEST_POSTGRES_URL_ENV: &str = "CALMESH_TEST_POSTGRES_URL";

/// The prefix of every test schema's name.
const PREFIX: &str = "calmesh_test_";

/// Test schemas older than this are left over from killed test processes:
/// the next [`PgTestSchema::create`] drops them.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// How long dropping a schema waits for locks (a connection a failed test
/// left inside a transaction) before leaving the schema for a later sweep.
const DROP_LOCK_TIMEOUT: &str = "10s";

/// The URL of the test server, or None when `CALMESH_TEST_POSTGRES_URL` is
/// unset or empty, in which case it prints
/// `skipped: CALMESH_TEST_POSTGRES_URL not set` to stderr, so the skip shows
/// in the test's output.
///
/// # Panics
///
/// When the variable is unset or empty and `CI` is set (to anything but
/// empty, `0` or `false`): in CI the PostgreSQL tests must run, not pass
/// by returning early.
pub fn postgres_test_url() -> Option<String> {
    match std::env::var(TEST_POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if in_ci() => panic!(
            "{TEST_POSTGRES_URL_ENV} is not set but CI is: the PostgreSQL tests must run in CI \
             (point it at a server, e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!("skipped: {TEST_POSTGRES_URL_ENV} not set");
            None
        }
    }
}

/// Whether `CI` says this is a CI run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A fresh, empty schema for one test, dropped with everything in it by
/// [`PgTestSchema::drop_now`] or, when a test ends without calling it (a
/// panic), when the value is dropped.
///
/// Its name is `calmesh_test_<unix seconds>_<process id>_<counter>`, unique
/// among live processes; the seconds let a later test drop schemas that a
/// killed process left behind.
#[derive(Debug)]
pub struct PgTestSchema {
    base_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl PgTestSchema {
    /// A schema for one test in the database of `CALMESH_TEST_POSTGRES_URL`,
    /// or None when it is not set (see [`postgres_test_url`]).
    pub async fn from_env() -> Result<Option<PgTestSchema>, StoreError> {
        match postgres_test_url() {
            Some(url) => Self::create(&url).await.map(Some),
            None => Ok(None),
        }
    }

    /// Creates a schema in the database at `base_url`, first dropping test
    /// schemas there that are more than an hour old.
    pub async fn create(base_url: &str) -> Result<PgTestSchema, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{PREFIX}{}_{}_{}",
            now.as_secs(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = connect(base_url).await?;
        drop_stale(&mut conn, now).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options[search_path]={name}");
        Ok(PgTestSchema {
            base_url: base_url.to_owned(),
            name,
            url,
            dropped: false,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL with this schema as the search path: what
    /// [`PgStore::open`](crate::PgStore::open) takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it. Close the stores opened on it
    /// first.
    pub async fn drop_now(mut self) -> Result<(), StoreError> {
        self.dropped = true;
        drop_schema(&self.base_url, &self.name).await
    }
}

impl Drop for PgTestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside the test's runtime (unwinding from a panic), so
        // the cleanup gets a thread and a runtime of its own.
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(drop_schema(&base_url, &name))
                .map_err(|e| e.to_string())
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop the test schema {}: {e}", self.name);
        }
    }
}

/// A connection for creating and dropping schemas; it waits for locks at
/// most [`DROP_LOCK_TIMEOUT`].
async fn connect(base_url: &str) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::connect(base_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET lock_timeout = '{DROP_LOCK_TIMEOUT}'"
    )))
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

async fn drop_schema(base_url: &str, name: &str) -> Result<(), StoreError> {
    let mut conn = connect(base_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// Drops the test schemas whose name says they are older than
/// [`STALE_AFTER`]. Failures are ignored: another process may be dropping the
/// same schemas, and a schema still locked waits for the next sweep.
async fn drop_stale(conn: &mut PgConnection, now: Duration) -> Result<(), StoreError> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *conn)
            .await?;
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let stale = created.is_some_and(|secs| now.as_secs() > secs + STALE_AFTER.as_secs());
        if stale && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
            if let Err(e) = dropped {
                eprintln!("could not drop the stale test schema {name}: {e}");
            }
        }
    }
    Ok(())
}
