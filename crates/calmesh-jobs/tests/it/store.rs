//! The queue in the store's database: each keeps its own migrations table,
//! and either can be opened first, or again.

use std::sync::Arc;

use calmesh_jobs::{JobKind, JobQueue, QueueConfig, SqliteQueue, SystemClock};
use calmesh_store::{SecretKey, SqliteStore, Store};
use serde_json::json;

#[tokio::test]
async fn sqlite_queue_shares_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let key = || SecretKey::from_bytes([7; 32]);
    let store = SqliteStore::open(&url, key()).await.unwrap();
    let queue = SqliteQueue::open(
        store.pool().clone(),
        Arc::new(SystemClock),
        QueueConfig::default(),
    )
    .await
    .unwrap();
    store.ensure_user("alice").await.unwrap();
    let id = queue
        .enqueue(JobKind::PullCalendar, "calendar:1", &json!({}), None)
        .await
        .unwrap()
        .id;

    let applied = |table: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(applied(calmesh_jobs::MIGRATIONS_TABLE).await, 1);
    assert!(applied(calmesh_store::MIGRATIONS_TABLE).await >= 1);
    queue.pool().close().await;

    // A restart opens both again, in the other order.
    let queue = SqliteQueue::open(
        sqlx::SqlitePool::connect(&url).await.unwrap(),
        Arc::new(SystemClock),
        QueueConfig::default(),
    )
    .await
    .unwrap();
    let store = SqliteStore::open(&url, key()).await.unwrap();
    assert_eq!(queue.job(id).await.unwrap().key, "calendar:1");
    assert!(store.ensure_user("alice").await.is_ok());
}
