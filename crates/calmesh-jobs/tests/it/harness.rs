//! A queue for one test: on a SQLite file of its own, or in a PostgreSQL
//! schema of its own (tests run in parallel processes), with a manual clock.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calmesh_jobs::{JobQueue, ManualClock, PgQueue, QueueConfig, SqliteQueue};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_ENV: &str = "CALMESH_TEST_POSTGRES_URL";

/// The prefix of every test schema this crate makes.
const SCHEMA_PREFIX: &str = "calmesh_jobs_test_";

/// Test schemas older than this were left by killed test processes.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Where a test's queue lives.
pub enum Db {
    /// A file in a temporary directory (WAL, a pool of 4 like the store's).
    Sqlite(SqlitePool, TempDir),
    /// A schema of its own on the test server.
    Postgres(PgPool, PgSchema),
}

/// One test's queue and clock.
pub struct Harness {
    /// The queue with the default configuration.
    pub queue: Arc<dyn JobQueue>,
    /// The clock every queue of this harness reads.
    pub clock: Arc<ManualClock>,
    db: Db,
}

/// The time tests start at (a whole second, so both databases keep it
/// exactly).
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap()
}

impl Harness {
    /// A queue on a fresh SQLite file.
    pub async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("calmesh.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        Self::new(Db::Sqlite(pool, dir)).await
    }

    /// A queue in a fresh schema on the server of
    /// `CALMESH_TEST_POSTGRES_URL`, or None (after saying so) when it is not
    /// set.
    pub async fn postgres() -> Option<Harness> {
        let Some(url) = postgres_url() else {
            eprintln!("skipped: {POSTGRES_URL_ENV} not set");
            return None;
        };
        let schema = PgSchema::create(&url).await;
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .unwrap();
        Some(Self::new(Db::Postgres(pool, schema)).await)
    }

    async fn new(db: Db) -> Harness {
        let clock = Arc::new(ManualClock::new(start()));
        let queue = open(&db, clock.clone(), QueueConfig::default()).await;
        Harness { queue, clock, db }
    }

    /// Another queue on the same database and clock, configured otherwise.
    pub async fn with_config(&self, config: QueueConfig) -> Arc<dyn JobQueue> {
        open(&self.db, self.clock.clone(), config).await
    }

    /// The backend's name, for printed figures.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(..) => "sqlite (file, WAL)",
            Db::Postgres(..) => "postgres",
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Closes the pool and drops the test schema.
    pub async fn finish(self) {
        match self.db {
            Db::Sqlite(pool, _dir) => pool.close().await,
            Db::Postgres(pool, mut schema) => {
                pool.close().await;
                schema.drop_now().await;
            }
        }
    }
}

async fn open(db: &Db, clock: Arc<ManualClock>, config: QueueConfig) -> Arc<dyn JobQueue> {
    match db {
        Db::Sqlite(pool, _) => Arc::new(
            SqliteQueue::open(pool.clone(), clock, config)
                .await
                .unwrap(),
        ),
        Db::Postgres(pool, _) => {
            Arc::new(PgQueue::open(pool.clone(), clock, config).await.unwrap())
        }
    }
}

fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// A schema for one test, dropped by [`PgSchema::drop_now`] or, when the test
/// panicked first, on drop.
pub struct PgSchema {
    base_url: String,
    name: String,
    dropped: bool,
}

impl PgSchema {
    async fn create(base_url: &str) -> PgSchema {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let name = format!(
            "{SCHEMA_PREFIX}{}_{}_{}",
            now.as_secs(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(base_url).await.unwrap();
        drop_stale(&mut conn, now).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        PgSchema {
            base_url: base_url.to_owned(),
            name,
            dropped: false,
        }
    }

    async fn drop_now(&mut self) {
        self.dropped = true;
        drop_schema(&self.base_url, &self.name).await;
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside the test's runtime (unwinding from a panic), so
        // the cleanup gets a thread and a runtime of its own.
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_schema(&base_url, &name));
        })
        .join();
    }
}

async fn drop_schema(base_url: &str, name: &str) {
    let mut conn = PgConnection::connect(base_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// Drops this crate's test schemas that killed processes left behind.
async fn drop_stale(conn: &mut PgConnection, now: Duration) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(SCHEMA_PREFIX)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for name in names {
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| now.as_secs() > secs + STALE_AFTER.as_secs()) {
            // Another process may be dropping it too.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}
