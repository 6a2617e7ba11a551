//! The queue in the store's database: each keeps its own migrations table,
//! and either can be opened first, or again (a restart).

use std::sync::Arc;

use calmesh_jobs::{JobKind, JobQueue, PgQueue, QueueConfig, SqliteQueue, SystemClock};
use calmesh_store::testing::PgTestSchema;
use calmesh_store::{PgStore, SecretKey, SqliteStore, Store};
use serde_json::json;

fn key() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

/// How many migrations the table records (a macro: the pools differ in
/// type).
macro_rules! applied {
    ($pool:expr, $table:expr) => {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            $table
        )))
        .fetch_one($pool)
        .await
        .unwrap()
    };
}

#[tokio::test]
async fn sqlite_queue_shares_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    let clock = Arc::new(SystemClock);
    let queue = SqliteQueue::open(store.pool().clone(), clock.clone(), QueueConfig::default())
        .await
        .unwrap();
    store.ensure_user("alice").await.unwrap();
    let id = queue
        .enqueue(JobKind::PullCalendar, "calendar:1", &json!({}), None)
        .await
        .unwrap()
        .id;
    assert!(applied!(store.pool(), calmesh_jobs::MIGRATIONS_TABLE) >= 1);
    assert!(applied!(store.pool(), calmesh_store::MIGRATIONS_TABLE) >= 1);
    store.close().await;

    // A restart opens both again, the queue first this time.
    let queue = SqliteQueue::open(
        sqlx::SqlitePool::connect(&url).await.unwrap(),
        clock,
        QueueConfig::default(),
    )
    .await
    .unwrap();
    let store = SqliteStore::open(&url, key()).await.unwrap();
    assert_eq!(queue.job(id).await.unwrap().key, "calendar:1");
    assert!(store.ensure_user("alice").await.is_ok());
    queue.pool().close().await;
    store.close().await;
}

#[tokio::test]
async fn postgres_queue_shares_the_store_schema() {
    let Some(schema) = PgTestSchema::from_env().await.unwrap() else {
        return;
    };
    let store = PgStore::open(schema.url(), key()).await.unwrap();
    let clock = Arc::new(SystemClock);
    let queue = PgQueue::open(store.pool().clone(), clock.clone(), QueueConfig::default())
        .await
        .unwrap();
    store.ensure_user("alice").await.unwrap();
    let id = queue
        .enqueue(
            JobKind::ReconcileRule,
            "rule:1",
            &json!({ "rule": 1 }),
            None,
        )
        .await
        .unwrap()
        .id;
    assert!(applied!(store.pool(), calmesh_jobs::MIGRATIONS_TABLE) >= 1);
    assert!(applied!(store.pool(), calmesh_store::MIGRATIONS_TABLE) >= 1);
    store.close().await;

    let queue = PgQueue::open(
        sqlx::PgPool::connect(schema.url()).await.unwrap(),
        clock,
        QueueConfig::default(),
    )
    .await
    .unwrap();
    let store = PgStore::open(schema.url(), key()).await.unwrap();
    assert_eq!(queue.job(id).await.unwrap().payload, json!({ "rule": 1 }));
    assert!(store.ensure_user("alice").await.is_ok());
    queue.pool().close().await;
    store.close().await;
    schema.drop_now().await.unwrap();
}
