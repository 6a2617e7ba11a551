//! The queue's behaviour, written once against [`JobQueue`] and run on every
//! backend (see `main.rs`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calmesh_jobs::{
    Backoff, Clock, Enqueued, Failed, JobError, JobId, JobKind, JobQueue, JobState, QueueConfig,
};
use chrono::TimeDelta;
use serde_json::json;

use crate::harness::Harness;

use JobKind::{Cleanup, PullCalendar, ReconcileRule, RenewChannels};

const LEASE: Duration = Duration::from_secs(60);

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap()
}

/// An id no job has.
fn missing() -> JobId {
    "987654321".parse().unwrap()
}

async fn enqueue(q: &dyn JobQueue, kind: JobKind, key: &str) -> JobId {
    let enqueued = q
        .enqueue(kind, key, &json!({ "key": key }), None)
        .await
        .unwrap();
    assert!(!enqueued.coalesced, "{key}");
    enqueued.id
}

async fn claim(q: &dyn JobQueue, worker: &str) -> calmesh_jobs::Job {
    q.claim(worker, None, LEASE)
        .await
        .unwrap()
        .expect("a due job")
}

pub async fn coalescing(h: &Harness) {
    let q = &*h.queue;
    let now = h.clock.now();
    let first = q
        .enqueue(PullCalendar, "calendar:1", &json!({ "n": 0 }), None)
        .await
        .unwrap();
    assert!(!first.coalesced);
    for n in 1..100 {
        let again = q
            .enqueue(PullCalendar, "calendar:1", &json!({ "n": n }), None)
            .await
            .unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: first.id,
                coalesced: true
            }
        );
    }
    let pending = q.list(Some(JobState::Pending), 1000).await.unwrap();
    assert_eq!(pending.len(), 1);
    let job = &pending[0];
    assert_eq!(
        (job.id, job.kind, job.key.as_str()),
        (first.id, PullCalendar, "calendar:1")
    );
    assert_eq!(job.triggers, 100);
    assert_eq!(job.payload, json!({ "n": 0 }), "the first payload stays");
    assert_eq!(
        (job.state, job.run_at, job.attempts),
        (JobState::Pending, now, 0)
    );
    assert_eq!(job.created_at, now);

    // Keys coalesce per kind.
    let other_kind = enqueue(q, ReconcileRule, "calendar:1").await;
    let other_key = enqueue(q, PullCalendar, "calendar:2").await;
    assert_ne!(other_kind, other_key);

    // A trigger moves run_at earlier, never later.
    let hour = now + TimeDelta::hours(1);
    let later = q
        .enqueue(PullCalendar, "calendar:3", &json!({}), Some(hour))
        .await
        .unwrap();
    let run_at = |id| async move { q.job(id).await.unwrap().run_at };
    q.enqueue(
        PullCalendar,
        "calendar:3",
        &json!({}),
        Some(hour + TimeDelta::hours(1)),
    )
    .await
    .unwrap();
    assert_eq!(run_at(later.id).await, hour);
    let soon = now + TimeDelta::minutes(10);
    let earlier = q
        .enqueue(PullCalendar, "calendar:3", &json!({}), Some(soon))
        .await
        .unwrap();
    assert_eq!(
        earlier,
        Enqueued {
            id: later.id,
            coalesced: true
        }
    );
    assert_eq!(run_at(later.id).await, soon);

    // A trigger during a run gets one pending job of its own, which waits
    // until the run ends.
    let running = q
        .claim("w1", Some(&[PullCalendar]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.id, first.id, "oldest due first");
    let during = q
        .enqueue(PullCalendar, "calendar:1", &json!({ "n": 100 }), None)
        .await
        .unwrap();
    assert!(!during.coalesced);
    assert_ne!(during.id, first.id);
    for n in 0..50 {
        let again = q
            .enqueue(PullCalendar, "calendar:1", &json!({ "n": n }), None)
            .await
            .unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: during.id,
                coalesced: true
            }
        );
    }
    let next = q
        .claim("w2", Some(&[PullCalendar]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, other_key, "calendar:1 waits for its run");
    assert!(
        q.claim("w3", Some(&[PullCalendar]), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    q.complete(first.id, "w1").await.unwrap();
    let after = q
        .claim("w3", Some(&[PullCalendar]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((after.id, after.triggers), (during.id, 51));
}

pub async fn concurrent_enqueues_coalesce(h: &Harness) {
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let q = h.queue.clone();
            tokio::spawn(async move {
                let mut ids = HashSet::new();
                for n in 0..50 {
                    let payload = json!({ "task": task, "n": n });
                    let enqueued = q
                        .enqueue(PullCalendar, "calendar:1", &payload, None)
                        .await
                        .unwrap();
                    ids.insert(enqueued.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    assert_eq!(ids.len(), 1);
    let pending = h.queue.list(Some(JobState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].triggers, 400);
}

pub async fn backoff_schedule(h: &Harness) {
    let config = QueueConfig {
        backoff: Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(60),
        },
        max_attempts: 10,
    };
    let q = &*h.with_config(config).await;
    let id = enqueue(q, PullCalendar, "calendar:1").await;
    let mut waits = Vec::new();
    for attempt in 1..=8 {
        let job = claim(q, "w").await;
        assert_eq!((job.id, job.attempts), (id, attempt));
        let now = h.clock.now();
        let error = format!("boom {attempt}");
        let Failed::Retry { run_at } = q.fail(id, "w", &error, None).await.unwrap() else {
            panic!("attempt {attempt} of 10 is not the last");
        };
        let wait = (run_at - now).to_std().unwrap();
        let (low, high) = config.backoff.bounds(attempt);
        assert!(
            low <= wait && wait <= high,
            "attempt {attempt}: {wait:?} not in {low:?}..={high:?}"
        );
        waits.push(wait);
        let job = q.job(id).await.unwrap();
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.last_error.as_deref(), Some(error.as_str()));
        assert_eq!((job.worker, job.leased_until), (None, None));
        // Not due a moment before its time.
        h.clock.set(run_at - TimeDelta::milliseconds(1));
        assert!(
            q.claim("w", None, LEASE).await.unwrap().is_none(),
            "attempt {attempt}"
        );
        h.clock.set(run_at);
    }
    // 5 s doubling, capped at 60 s: the bounds of attempts 5 to 8 are equal.
    assert_eq!(
        config.backoff.bounds(5),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    assert_eq!(config.backoff.bounds(8), config.backoff.bounds(5));
    println!("{}: waits after attempts 1 to 8: {waits:?}", h.backend());
    assert_eq!(claim(q, "w").await.attempts, 9);
    q.complete(id, "w").await.unwrap();

    // A longer Retry-After is honoured as given; a shorter one does not
    // shorten the backoff.
    let id = enqueue(q, PullCalendar, "calendar:2").await;
    claim(q, "w").await;
    let now = h.clock.now();
    let two_hours = Duration::from_secs(7200);
    let failed = q.fail(id, "w", "429", Some(two_hours)).await.unwrap();
    assert_eq!(
        failed,
        Failed::Retry {
            run_at: now + delta(two_hours)
        }
    );
    h.clock.set(now + delta(two_hours));
    let job = claim(q, "w").await;
    assert_eq!((job.id, job.attempts), (id, 2));
    let now = h.clock.now();
    let Failed::Retry { run_at } = q
        .fail(id, "w", "429", Some(Duration::from_secs(1)))
        .await
        .unwrap()
    else {
        panic!("not the last attempt");
    };
    let (low, high) = config.backoff.bounds(2);
    let wait = (run_at - now).to_std().unwrap();
    assert!(low <= wait && wait <= high, "{wait:?}");
}

pub async fn dead_after_max_attempts(h: &Harness) {
    let q = &*h
        .with_config(QueueConfig {
            max_attempts: 3,
            ..QueueConfig::default()
        })
        .await;
    let id = enqueue(q, ReconcileRule, "rule:1").await;
    for attempt in 1..=3 {
        let job = claim(q, "w").await;
        assert_eq!(job.attempts, attempt);
        let failed = q
            .fail(id, "w", &format!("error {attempt}"), None)
            .await
            .unwrap();
        match failed {
            Failed::Retry { run_at } if attempt < 3 => h.clock.set(run_at),
            Failed::Dead if attempt == 3 => {}
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    let job = q.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.last_error.as_deref(), Some("error 3"));
    assert_eq!(job.finished_at, Some(h.clock.now()));
    assert_eq!((job.worker, job.leased_until), (None, None));
    h.advance(Duration::from_secs(86_400));
    assert!(q.claim("w", None, LEASE).await.unwrap().is_none());
    assert_eq!(
        q.counts().await.unwrap().get(ReconcileRule, JobState::Dead),
        1
    );
    // A dead job does not absorb triggers: they make a new job.
    let fresh = enqueue(q, ReconcileRule, "rule:1").await;
    assert_ne!(fresh, id);
}

pub async fn lease_takeover(h: &Harness) {
    let q = &*h.queue;
    let id = enqueue(q, PullCalendar, "calendar:1").await;
    let lease = Duration::from_secs(30);
    let start = h.clock.now();
    let job = q.claim("a", None, lease).await.unwrap().unwrap();
    assert_eq!(
        (job.id, job.attempts, job.state),
        (id, 1, JobState::Running)
    );
    assert_eq!(job.worker.as_deref(), Some("a"));
    assert_eq!(job.leased_until, Some(start + delta(lease)));
    assert_eq!(job.started_at, Some(start));
    assert!(q.claim("b", None, lease).await.unwrap().is_none());

    // A heartbeat keeps the job.
    h.advance(Duration::from_secs(20));
    let until = q.heartbeat(id, "a", lease).await.unwrap();
    assert_eq!(until, start + TimeDelta::seconds(50));
    h.advance(Duration::from_secs(20));
    assert!(q.claim("b", None, lease).await.unwrap().is_none());

    // Worker a dies: once its lease ends, b takes the job over, before a
    // pending job that is due.
    let other = enqueue(q, PullCalendar, "calendar:9").await;
    h.advance(Duration::from_secs(10));
    let job = q.claim("b", None, lease).await.unwrap().unwrap();
    assert_eq!((job.id, job.attempts), (id, 2));
    assert_eq!(claim(q, "c").await.id, other);
    q.complete(other, "c").await.unwrap();
    assert_eq!(job.worker.as_deref(), Some("b"));
    assert_eq!(job.last_error.as_deref(), Some("lease of worker a expired"));

    // a comes back: everything it tries is refused.
    let lost = |r: Result<(), JobError>| matches!(r, Err(JobError::LeaseLost { id: lost, .. }) if lost == id);
    assert!(lost(q.heartbeat(id, "a", lease).await.map(drop)));
    assert!(lost(q.complete(id, "a").await));
    assert!(lost(q.fail(id, "a", "late", None).await.map(drop)));
    assert!(lost(q.release(id, "a").await));
    q.complete(id, "b").await.unwrap();
    let job = q.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.finished_at, Some(h.clock.now()));
    assert!(lost(q.complete(id, "b").await), "done is done");
    assert!(matches!(
        q.heartbeat(missing(), "b", lease).await,
        Err(JobError::NotFound(n)) if n == missing()
    ));

    // A job whose worker dies on its last attempt is dead, not run again.
    let q = &*h
        .with_config(QueueConfig {
            max_attempts: 2,
            ..QueueConfig::default()
        })
        .await;
    let id = enqueue(q, PullCalendar, "calendar:2").await;
    claim(q, "a").await;
    h.advance(LEASE + Duration::from_secs(1));
    assert_eq!(claim(q, "b").await.attempts, 2);
    h.advance(LEASE + Duration::from_secs(1));
    assert!(q.claim("c", None, LEASE).await.unwrap().is_none());
    let job = q.job(id).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Dead, 2));
    assert_eq!(job.last_error.as_deref(), Some("lease of worker b expired"));
    assert_eq!(job.finished_at, Some(h.clock.now()));
}

pub async fn no_job_runs_twice(h: &Harness) {
    const JOBS: usize = 200;
    const WORKERS: usize = 8;
    for n in 0..JOBS {
        let kind = JobKind::ALL[n % JobKind::ALL.len()];
        enqueue(&*h.queue, kind, &format!("key:{n}")).await;
    }
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let running = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|task| {
            let (q, seen, running) = (h.queue.clone(), seen.clone(), running.clone());
            tokio::spawn(async move {
                let worker = format!("worker-{task}");
                let mut done = 0;
                while let Some(job) = q.claim(&worker, None, LEASE).await.unwrap() {
                    assert!(
                        running.lock().unwrap().insert(job.id),
                        "{} runs twice at once",
                        job.id
                    );
                    assert!(
                        seen.lock().unwrap().insert(job.id),
                        "{} claimed twice",
                        job.id
                    );
                    tokio::task::yield_now().await;
                    running.lock().unwrap().remove(&job.id);
                    q.complete(job.id, &worker).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut per_worker = Vec::new();
    for task in tasks {
        per_worker.push(task.await.unwrap());
    }
    assert_eq!(seen.lock().unwrap().len(), JOBS);
    assert_eq!(per_worker.iter().sum::<usize>(), JOBS);
    let counts = h.queue.counts().await.unwrap();
    assert_eq!(counts.state(JobState::Done), JOBS as u64);
    assert_eq!(counts.total(), JOBS as u64);
    println!("{}: jobs per worker {per_worker:?}", h.backend());
}

/// Workers claim, complete and release while triggers keep arriving for a
/// few keys: a key never runs twice at once, and every trigger ends up in
/// exactly one completed run (none lost in a merge, none counted twice).
pub async fn one_run_per_key_under_load(h: &Harness) {
    const KEYS: usize = 4;
    const TRIGGERS: usize = 200;
    let running = Arc::new(Mutex::new(HashSet::new()));
    let enqueuing = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|task| {
            let (q, running, enqueuing, runs) = (
                h.queue.clone(),
                running.clone(),
                enqueuing.clone(),
                runs.clone(),
            );
            tokio::spawn(async move {
                let worker = format!("worker-{task}");
                let mut n = 0u32;
                loop {
                    let still_enqueuing = enqueuing.load(Ordering::SeqCst);
                    let Some(job) = q.claim(&worker, None, LEASE).await.unwrap() else {
                        if still_enqueuing {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        break;
                    };
                    assert!(
                        running.lock().unwrap().insert(job.key.clone()),
                        "{} runs twice",
                        job.key
                    );
                    tokio::task::yield_now().await;
                    running.lock().unwrap().remove(&job.key);
                    n += 1;
                    if n.is_multiple_of(3) {
                        q.release(job.id, &worker).await.unwrap();
                    } else {
                        q.complete(job.id, &worker).await.unwrap();
                        runs.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let enqueuers: Vec<_> = (0..4)
        .map(|task| {
            let q = h.queue.clone();
            tokio::spawn(async move {
                for n in 0..TRIGGERS / 4 {
                    let key = format!("calendar:{}", (n + task) % KEYS);
                    q.enqueue(PullCalendar, &key, &json!({}), None)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in enqueuers {
        task.await.unwrap();
    }
    enqueuing.store(false, Ordering::SeqCst);
    for task in workers {
        task.await.unwrap();
    }
    let counts = h.queue.counts().await.unwrap();
    assert_eq!(counts.state(JobState::Pending), 0);
    assert_eq!(counts.state(JobState::Running), 0);
    let done = h.queue.list(Some(JobState::Done), 1000).await.unwrap();
    let triggers: u64 = done.iter().map(|job| job.triggers).sum();
    assert_eq!(
        triggers, TRIGGERS as u64,
        "every trigger is in exactly one run"
    );
    assert_eq!(runs.load(Ordering::SeqCst), done.len() as u64);
    println!(
        "{}: {TRIGGERS} triggers for {KEYS} keys made {} runs",
        h.backend(),
        done.len()
    );
}

pub async fn release_keeps_attempts(h: &Harness) {
    let q = &*h.queue;
    let id = enqueue(q, PullCalendar, "calendar:1").await;
    claim(q, "w").await;
    let Failed::Retry { run_at } = q.fail(id, "w", "timeout", None).await.unwrap() else {
        panic!("first attempt");
    };
    h.clock.set(run_at);
    let job = claim(q, "w").await;
    assert_eq!(job.attempts, 2);
    q.release(id, "w").await.unwrap();
    let released = q.job(id).await.unwrap();
    assert_eq!(released.state, JobState::Pending);
    assert_eq!(released.attempts, 1, "the released attempt does not count");
    assert_eq!((released.worker, released.leased_until), (None, None));
    assert_eq!(released.run_at, job.run_at, "keeps its place in the queue");
    assert_eq!(released.last_error.as_deref(), Some("timeout"));
    assert_eq!(claim(q, "w2").await.attempts, 2);

    // A trigger that came during the run merges into the released job.
    let during = enqueue(q, PullCalendar, "calendar:1").await;
    q.release(id, "w2").await.unwrap();
    assert!(matches!(q.job(during).await, Err(JobError::NotFound(n)) if n == during));
    let pending = q.list(Some(JobState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id, pending[0].triggers, pending[0].attempts),
        (id, 2, 1)
    );
}

pub async fn fail_merges_trigger_during_run(h: &Harness) {
    let q = &*h.queue;
    let id = enqueue(q, PullCalendar, "calendar:1").await;
    claim(q, "w").await;
    let during = enqueue(q, PullCalendar, "calendar:1").await;
    let now = h.clock.now();
    let wait = Duration::from_secs(600);
    let failed = q.fail(id, "w", "503", Some(wait)).await.unwrap();
    assert_eq!(
        failed,
        Failed::Retry {
            run_at: now + delta(wait)
        }
    );
    assert!(matches!(q.job(during).await, Err(JobError::NotFound(_))));
    let job = q.job(id).await.unwrap();
    assert_eq!(
        (job.state, job.triggers, job.attempts),
        (JobState::Pending, 2, 1)
    );
    assert_eq!(
        job.run_at,
        now + delta(wait),
        "the merged trigger waits too"
    );
    assert!(q.claim("w", None, LEASE).await.unwrap().is_none());
}

pub async fn retry_and_purge(h: &Harness) {
    let q = &*h
        .with_config(QueueConfig {
            max_attempts: 1,
            ..QueueConfig::default()
        })
        .await;
    let mut ids = Vec::new();
    for key in ["rule:a", "rule:b", "rule:c"] {
        let id = enqueue(q, ReconcileRule, key).await;
        claim(q, "w").await;
        assert_eq!(q.fail(id, "w", "bad", None).await.unwrap(), Failed::Dead);
        ids.push(id);
    }
    let [a, b, c] = ids[..] else { unreachable!() };
    h.advance(Duration::from_secs(60));

    q.retry(a).await.unwrap();
    let job = q.job(a).await.unwrap();
    assert_eq!(
        (job.state, job.attempts, job.finished_at),
        (JobState::Pending, 0, None)
    );
    assert_eq!(job.run_at, h.clock.now());
    assert!(matches!(
        q.retry(a).await,
        Err(JobError::WrongState {
            state: JobState::Pending,
            expected: JobState::Dead,
            ..
        })
    ));
    assert!(matches!(
        q.retry(missing()).await,
        Err(JobError::NotFound(_))
    ));
    let job = claim(q, "w").await;
    assert_eq!((job.id, job.attempts), (a, 1));
    q.complete(a, "w").await.unwrap();

    // A retried job merges with a pending job of its key.
    let b2 = enqueue(q, ReconcileRule, "rule:b").await;
    q.retry(b).await.unwrap();
    assert!(matches!(q.job(b2).await, Err(JobError::NotFound(_))));
    assert_eq!(q.job(b).await.unwrap().triggers, 2);

    assert_eq!(q.purge_dead().await.unwrap(), 1);
    assert!(matches!(q.job(c).await, Err(JobError::NotFound(_))));
    assert_eq!(q.purge_dead().await.unwrap(), 0);
    let counts = q.counts().await.unwrap();
    assert_eq!(counts.state(JobState::Dead), 0);
    assert_eq!(counts.get(ReconcileRule, JobState::Done), 1);
    assert_eq!(counts.get(ReconcileRule, JobState::Pending), 1);
}

pub async fn counts_and_age(h: &Harness) {
    let q = &*h.queue;
    let start = h.clock.now();
    assert_eq!(q.counts().await.unwrap().total(), 0);
    assert_eq!(q.oldest_pending_age(start).await.unwrap(), None);
    for key in ["calendar:1", "calendar:2", "calendar:3"] {
        enqueue(q, PullCalendar, key).await;
    }
    h.advance(Duration::from_secs(30));
    for key in ["rule:1", "rule:2"] {
        enqueue(q, ReconcileRule, key).await;
    }
    let hour = h.clock.now() + TimeDelta::hours(1);
    q.enqueue(RenewChannels, "channels", &json!({}), Some(hour))
        .await
        .unwrap();
    enqueue(q, Cleanup, "cleanup").await;

    let pull = q
        .claim("w", Some(&[PullCalendar]), LEASE)
        .await
        .unwrap()
        .unwrap();
    let rule = q
        .claim("w", Some(&[ReconcileRule]), LEASE)
        .await
        .unwrap()
        .unwrap();
    q.complete(rule.id, "w").await.unwrap();
    assert_eq!(pull.key, "calendar:1");

    let counts = q.counts().await.unwrap();
    assert_eq!(counts.get(PullCalendar, JobState::Pending), 2);
    assert_eq!(counts.get(PullCalendar, JobState::Running), 1);
    assert_eq!(counts.get(ReconcileRule, JobState::Pending), 1);
    assert_eq!(counts.get(ReconcileRule, JobState::Done), 1);
    assert_eq!(counts.get(RenewChannels, JobState::Pending), 1);
    assert_eq!(counts.get(Cleanup, JobState::Pending), 1);
    assert_eq!(counts.get(Cleanup, JobState::Dead), 0);
    assert_eq!(counts.state(JobState::Pending), 5);
    assert_eq!(counts.total(), 7);
    assert_eq!(
        serde_json::to_value(&counts).unwrap()["pull_calendar"],
        json!({ "pending": 2, "running": 1 })
    );

    // calendar:2 has waited since the start; the renewal is not due.
    h.advance(Duration::from_secs(60));
    let now = h.clock.now();
    assert_eq!(
        q.oldest_pending_age(now).await.unwrap(),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        q.oldest_pending_age(start).await.unwrap(),
        Some(Duration::ZERO)
    );
}

pub async fn list_and_kinds(h: &Harness) {
    let q = &*h.queue;
    let mut ids = Vec::new();
    for kind in JobKind::ALL {
        ids.push(enqueue(q, *kind, "k").await);
    }
    let renew = q
        .claim("w", Some(&[RenewChannels]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renew.kind, RenewChannels);
    let job = q
        .claim("w", Some(&[Cleanup, ReconcileRule]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.kind, ReconcileRule, "the older of the two kinds");
    assert!(
        q.claim("w", Some(&[RenewChannels]), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert!(q.claim("w", Some(&[]), LEASE).await.unwrap().is_none());

    let all = q.list(None, 10).await.unwrap();
    let listed: Vec<JobId> = all.iter().map(|job| job.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert_eq!(q.list(None, 2).await.unwrap().len(), 2);
    let running: Vec<JobId> = q
        .list(Some(JobState::Running), 10)
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(running, [renew.id, job.id]);
    assert!(q.list(Some(JobState::Dead), 10).await.unwrap().is_empty());
}

pub async fn cleanup_keeps_recent_history(h: &Harness) {
    let q = &*h
        .with_config(QueueConfig {
            max_attempts: 1,
            ..QueueConfig::default()
        })
        .await;
    let t0 = h.clock.now();
    let a = enqueue(q, PullCalendar, "a").await;
    claim(q, "w").await;
    q.complete(a, "w").await.unwrap();
    h.advance(Duration::from_secs(3600));
    let b = enqueue(q, PullCalendar, "b").await;
    claim(q, "w").await;
    q.fail(b, "w", "gone", None).await.unwrap();
    h.advance(Duration::from_secs(3600));
    let c = enqueue(q, PullCalendar, "c").await;
    claim(q, "w").await;
    q.complete(c, "w").await.unwrap();
    let e = enqueue(q, PullCalendar, "e").await;
    claim(q, "w").await;
    let d = enqueue(q, PullCalendar, "d").await;

    // History: what ran, when it finished, how often it was tried.
    let done = q.job(a).await.unwrap();
    assert_eq!(
        (done.state, done.attempts, done.finished_at),
        (JobState::Done, 1, Some(t0))
    );
    assert_eq!(done.last_error, None);
    let dead = q.job(b).await.unwrap();
    assert_eq!(dead.last_error.as_deref(), Some("gone"));

    assert_eq!(q.cleanup(t0 + TimeDelta::minutes(90)).await.unwrap(), 2);
    for gone in [a, b] {
        assert!(matches!(q.job(gone).await, Err(JobError::NotFound(_))));
    }
    assert_eq!(q.cleanup(t0 + TimeDelta::days(30)).await.unwrap(), 1);
    let left: Vec<JobId> = q
        .list(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(left, [d, e], "pending and running jobs stay");
}

pub async fn throughput(h: &Harness) {
    const JOBS: usize = 10_000;
    const WORKERS: usize = 4;
    let started = Instant::now();
    for n in 0..JOBS {
        h.queue
            .enqueue(
                PullCalendar,
                &format!("calendar:{n}"),
                &json!({ "calendar": n }),
                None,
            )
            .await
            .unwrap();
    }
    let enqueued = started.elapsed();
    let started = Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|task| {
            let q = h.queue.clone();
            tokio::spawn(async move {
                let worker = format!("worker-{task}");
                while let Some(job) = q.claim(&worker, None, LEASE).await.unwrap() {
                    q.complete(job.id, &worker).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let processed = started.elapsed();
    assert_eq!(
        h.queue.counts().await.unwrap().state(JobState::Done),
        JOBS as u64
    );
    let rate = |d: Duration| JOBS as f64 / d.as_secs_f64();
    println!(
        "throughput {}: enqueue {JOBS} jobs {:.2} s ({:.0}/s); claim+complete with {WORKERS} \
         workers {:.2} s ({:.0}/s); total {:.0} jobs/s",
        h.backend(),
        enqueued.as_secs_f64(),
        rate(enqueued),
        processed.as_secs_f64(),
        rate(processed),
        rate(enqueued + processed),
    );
}

/// Every process may run the scheduler: a (schedule, fire time) is enqueued
/// by exactly one of them, even when they race, and after the job ran.
pub async fn a_fire_time_is_enqueued_once(h: &Harness) {
    let q = h.queue.clone();
    let fire = h.clock.now() - chrono::Duration::minutes(1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            q.enqueue_fire(
                ReconcileRule,
                "rule:7",
                &json!({"rule": "7"}),
                "rule:7:cron",
                fire,
            )
            .await
            .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let job = claim(&*q, "w").await;
    assert_eq!((job.kind, job.key.as_str()), (ReconcileRule, "rule:7"));
    q.complete(job.id, "w").await.unwrap();
    // The same fire again after the run: still nothing.
    assert!(
        q.enqueue_fire(ReconcileRule, "rule:7", &json!({}), "rule:7:cron", fire)
            .await
            .unwrap()
            .is_none()
    );
    // The next fire time is new.
    let next = fire + chrono::Duration::days(1);
    assert!(
        q.enqueue_fire(ReconcileRule, "rule:7", &json!({}), "rule:7:cron", next)
            .await
            .unwrap()
            .is_some()
    );
}

/// Fires in bulk behave as one by one: each (schedule, fire time) once,
/// whichever path recorded it first; coalesced with pending jobs; a
/// schedule twice in one batch still counts once per fire time.
pub async fn fires_in_bulk_are_enqueued_once(h: &Harness) {
    use calmesh_jobs::Fire;
    let q = h.queue.clone();
    // Sub-microsecond digits: both paths must keep the same instant.
    let fire = h.clock.now() - chrono::Duration::nanoseconds(61_000_000_789);
    let make = |n: usize, at| Fire {
        kind: PullCalendar,
        key: format!("pull:{n}"),
        payload: json!({"calendar": n.to_string()}),
        schedule: format!("poll:{n}"),
        fire_at: at,
    };
    // Fire 0 goes in alone first, by the single path.
    assert!(
        q.enqueue_fire(
            PullCalendar,
            "pull:0",
            &json!({"calendar": "0"}),
            "poll:0",
            fire
        )
        .await
        .unwrap()
        .is_some()
    );
    // A pending job for calendar 1 (a webhook's), which the fire joins.
    q.enqueue(PullCalendar, "pull:1", &json!({"calendar": "1"}), None)
        .await
        .unwrap();
    let mut fires: Vec<Fire> = (0..2500).map(|n| make(n, fire)).collect();
    // Calendar 5 twice: a later fire time too, in the same batch.
    fires.push(make(5, fire + chrono::Duration::minutes(15)));
    let new = q.enqueue_fires(&fires).await.unwrap();
    assert_eq!(new, 2500, "0 was recorded before; 5's second fire is new");
    assert_eq!(q.enqueue_fires(&fires).await.unwrap(), 0, "all recorded");
    assert!(
        q.enqueue_fire(PullCalendar, "pull:9", &json!({}), "poll:9", fire)
            .await
            .unwrap()
            .is_none(),
        "recorded by the bulk path"
    );
    let pending = q.list(Some(JobState::Pending), 5000).await.unwrap();
    assert_eq!(pending.len(), 2500, "one pending job per calendar");
    let one = pending.iter().find(|j| j.key == "pull:1").unwrap();
    assert_eq!(one.triggers, 2, "{one:?}");
    let five = pending.iter().find(|j| j.key == "pull:5").unwrap();
    assert_eq!(five.triggers, 2, "{five:?}");
    assert_eq!(five.payload, json!({"calendar": "5"}));
}

/// The scheduler tick over a real store: due calendars are pulled, a cron
/// rule fires once at its time in its zone, renewal and cleanup once per
/// hour and day; ticks repeated (or run by another process) add nothing.
pub async fn scheduler_tick(h: &Harness) {
    use calmesh_jobs::scheduler::{SchedulerConfig, tick};
    use calmesh_store::{Credentials, NewAccount, NewCalendar, NewRule, PullBatch};
    let store = h.store();
    let q = &*h.queue;
    // 03:30:20 in Chicago (CST, UTC-6) on the harness's day.
    let now: chrono::DateTime<chrono::Utc> = "2026-03-01T09:30:20Z".parse().unwrap();
    h.clock.set(now);
    let user = store.ensure_user("sched").await.unwrap();
    let account = store
        .upsert_account(&NewAccount {
            user: user.clone(),
            provider: "google".into(),
            email: "s@example.com".into(),
            client_id: "c".into(),
            api_base: None,
            token_url: None,
            credentials: Credentials {
                refresh_token: "r".into(),
                client_secret: "s".into(),
            },
        })
        .await
        .unwrap();
    let mut cals = Vec::new();
    // "unused" is in no rule: never polled, however stale.
    for name in ["stale", "fresh", "never", "unused"] {
        cals.push(
            store
                .upsert_calendar(&NewCalendar {
                    account: account.id.clone(),
                    remote_id: format!("{name}@example.com"),
                    name: name.into(),
                    time_zone: None,
                })
                .await
                .unwrap(),
        );
    }
    for (cal, ago) in [(&cals[0], 20), (&cals[1], 5)] {
        store
            .apply_pull(
                &cal.id,
                &PullBatch {
                    full: true,
                    cursor: Some("t".into()),
                    synced_at: now - chrono::Duration::minutes(ago),
                    ..PullBatch::default()
                },
            )
            .await
            .unwrap();
    }
    store
        .add_rule(&NewRule {
            user: user.clone(),
            name: "nightly".into(),
            kind: "busy".into(),
            config: json!({
                "calendars": [cals[0].id.to_string(), cals[1].id.to_string(), cals[2].id.to_string()],
                "schedule": {"cron": "30 3 * * *", "time_zone": "America/Chicago"},
            }),
        })
        .await
        .unwrap();
    let config = SchedulerConfig::default();
    let first = tick(store, q, &config, now).await.unwrap();
    assert_eq!(
        (first.calendars, first.pulls, first.rules),
        (4, 2, 1),
        "{first:?}"
    );
    assert!(first.renewal && first.cleanup);
    // Another process ticks at the same moment: nothing new.
    let other = h.with_config(QueueConfig::default()).await;
    let again = tick(store, &*other, &config, now).await.unwrap();
    assert_eq!(
        (again.pulls, again.rules, again.renewal, again.cleanup),
        (0, 0, false, false)
    );
    let pending = q.list(Some(JobState::Pending), 100).await.unwrap();
    let mut keys: Vec<&str> = pending.iter().map(|j| j.key.as_str()).collect();
    keys.sort();
    let stale = format!("pull:{}", cals[0].id);
    let never = format!("pull:{}", cals[2].id);
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.contains(&"cleanup") && keys.contains(&"renew_channels"));
    assert!(keys.contains(&stale.as_str()) && keys.contains(&never.as_str()));
    // Eleven minutes later (no worker ran) the fresh calendar is due too,
    // and the other two are asked for again (still never pulled, or
    // overdue by more than an interval); they coalesce with their pending
    // jobs. The cron rule does not fire again.
    let later = now + chrono::Duration::minutes(11);
    h.clock.set(later);
    let third = tick(store, q, &config, later).await.unwrap();
    assert_eq!((third.pulls, third.rules), (3, 0), "{third:?}");
    let pulls = q
        .list(Some(JobState::Pending), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == PullCalendar)
        .count();
    assert_eq!(pulls, 3, "one pending pull per calendar");
    // A bad schedule is reported, not fatal.
    store
        .add_rule(&NewRule {
            user,
            name: "broken".into(),
            kind: "busy".into(),
            config: json!({"calendars": [], "schedule": {"cron": "99 * * * *", "time_zone": "UTC"}}),
        })
        .await
        .unwrap();
    let fourth = tick(store, q, &config, later).await.unwrap();
    assert_eq!(fourth.bad_schedules.len(), 1);
    assert_eq!(fourth.bad_schedules[0].0, "broken");
}
