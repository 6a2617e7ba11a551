//! The worker's handling of a job's end, on a real SQLite queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use calmesh_jobs::{
    Clock, Job, JobKind, JobQueue, JobState, ManualClock, QueueConfig, SqliteQueue,
};
use calmesh_store::{SecretKey, SqliteStore};
use chrono::{TimeZone, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::{JobFailure, WorkerConfig, WorkerHealth, finish};

struct Queue {
    queue: SqliteQueue,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn queue(max_attempts: u32) -> Queue {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let store = SqliteStore::open(&url, SecretKey::from_bytes([7; 32]))
        .await
        .unwrap();
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let config = QueueConfig {
        max_attempts,
        ..QueueConfig::default()
    };
    let queue = SqliteQueue::open(store.pool().clone(), clock.clone(), config)
        .await
        .unwrap();
    Queue {
        queue,
        clock,
        _dir: dir,
    }
}

async fn claim(q: &Queue) -> Job {
    q.queue
        .claim("w1", None, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a due job")
}

fn config() -> WorkerConfig {
    WorkerConfig {
        id: "w1".into(),
        ..WorkerConfig::numbered(0)
    }
}

async fn panics(n: u32) -> Result<(), JobFailure> {
    panic!("bad item number {n}")
}

// Issue 16, fault 1: a panic in a job killed its worker for good (and the
// next worker to claim the job after the lease lapsed).
#[tokio::test]
async fn a_panicking_job_fails_as_a_job_is_retried_then_dead() {
    let q = queue(2).await;
    q.queue
        .enqueue(JobKind::Cleanup, "cleanup", &json!({}), None)
        .await
        .unwrap();
    let (_tx, mut shutdown) = watch::channel(false);

    let job = claim(&q).await;
    finish(&q.queue, &config(), &job, panics(1), &mut shutdown).await;
    let after = q.queue.job(job.id).await.unwrap();
    assert_eq!(after.state, JobState::Pending, "retried: {after:?}");
    assert!(after.run_at > q.clock.now(), "with backoff: {after:?}");
    assert_eq!(
        after.last_error.as_deref(),
        Some("the job panicked: bad item number 1")
    );

    q.clock.advance(Duration::from_secs(3600));
    let job = claim(&q).await;
    finish(&q.queue, &config(), &job, panics(2), &mut shutdown).await;
    let after = q.queue.job(job.id).await.unwrap();
    assert_eq!(after.state, JobState::Dead, "{after:?}");
    assert_eq!(after.attempts, 2);

    // The same worker goes on with the next job.
    q.queue
        .enqueue(JobKind::Cleanup, "cleanup-2", &json!({}), None)
        .await
        .unwrap();
    let job = claim(&q).await;
    finish(&q.queue, &config(), &job, async { Ok(()) }, &mut shutdown).await;
    assert_eq!(q.queue.job(job.id).await.unwrap().state, JobState::Done);
}

#[tokio::test]
async fn a_worker_that_dies_stops_counting_as_running() {
    let health = Arc::new(WorkerHealth::default());
    let alive = health.enter();
    let dying = health.clone();
    let task = tokio::spawn(async move {
        let _running = dying.enter();
        assert_eq!(dying.running(), 2);
        panic!("outside any job");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!((health.started(), health.running()), (2, 1));
    drop(alive);
    assert_eq!(health.running(), 0);
}
