//! A queue for one test, in the database of a store of its own, as calmesh
//! runs it: a SQLite file (WAL, the store's pool of 4), or a PostgreSQL
//! schema of its own (tests run in parallel processes; see
//! `calmesh_store::testing`), with a manual clock.

use std::sync::Arc;

use calmesh_jobs::{JobQueue, ManualClock, PgQueue, QueueConfig, SqliteQueue};
use calmesh_store::testing::PgTestSchema;
use calmesh_store::{PgStore, SecretKey, SqliteStore};
use chrono::{DateTime, TimeZone, Utc};
use tempfile::TempDir;

/// Where a test's queue lives.
enum Db {
    Sqlite(SqliteStore, TempDir),
    Postgres(PgStore, PgTestSchema),
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
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap()
}

fn key() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

impl Harness {
    /// A queue in a fresh SQLite file.
    pub async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
        let store = SqliteStore::open(&url, key()).await.unwrap();
        Self::new(Db::Sqlite(store, dir)).await
    }

    /// A queue in a fresh schema on the server of
    /// `CALMESH_TEST_POSTGRES_URL`, or None when it is not set (the store's
    /// helper prints "skipped: CALMESH_TEST_POSTGRES_URL not set").
    pub async fn postgres() -> Option<Harness> {
        let schema = PgTestSchema::from_env().await.unwrap()?;
        let store = PgStore::open(schema.url(), key()).await.unwrap();
        Some(Self::new(Db::Postgres(store, schema)).await)
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

    /// The store the queue shares its database with.
    pub fn store(&self) -> &dyn calmesh_store::Store {
        match &self.db {
            Db::Sqlite(store, _) => store,
            Db::Postgres(store, _) => store,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    /// Closes the pool and drops the test schema.
    pub async fn finish(self) {
        drop(self.queue);
        match self.db {
            Db::Sqlite(store, _dir) => store.close().await,
            Db::Postgres(store, schema) => {
                store.close().await;
                schema.drop_now().await.unwrap();
            }
        }
    }
}

async fn open(db: &Db, clock: Arc<ManualClock>, config: QueueConfig) -> Arc<dyn JobQueue> {
    match db {
        Db::Sqlite(store, _) => Arc::new(
            SqliteQueue::open(store.pool().clone(), clock, config)
                .await
                .unwrap(),
        ),
        Db::Postgres(store, _) => Arc::new(
            PgQueue::open(store.pool().clone(), clock, config)
                .await
                .unwrap(),
        ),
    }
}
