//! The server over real HTTP, on a SQLite file and on PostgreSQL (each test
//! twice: `sqlite::name` and `postgres::name`; without
//! `CALMESH_TEST_POSTGRES_URL` the PostgreSQL ones print
//! `skipped: CALMESH_TEST_POSTGRES_URL not set` and pass).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use calmesh_jobs::{JobKind, JobQueue, JobState};
use common::{Delivery, Server, burst, one_at_a_time, watched_calendar};
use serde_json::json;

/// Runs each check on a fresh SQLite server and a fresh PostgreSQL one.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let server = super::Server::sqlite().await;
                    super::$check(&server).await;
                    server.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(server) = super::Server::postgres().await else { return };
                    super::$check(&server).await;
                    server.finish().await;
                }
            )*
        }
    };
}

on_both! {
    healthz,
    readyz,
    readyz_names_workers_that_are_not_running,
    metrics_show_the_queue,
    forged_tokens_are_refused_and_enqueue_nothing,
    unknown_channels_and_bad_requests,
    sync_messages_are_acknowledged_without_a_pull,
    a_change_enqueues_exactly_one_pending_pull,
    replayed_and_out_of_order_messages,
    a_burst_coalesces_into_one_pull_per_calendar,
    a_database_outage_answers_503_so_google_retries,
    deliveries_are_bounded_in_number_and_size,
}

// Issue 16, fault 9: webhook deliveries had no limit on how many run at
// once nor on their bodies.
async fn deliveries_are_bounded_in_number_and_size(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "bounded").await;
    let max = u32::try_from(calmesh_server::webhooks::MAX_IN_FLIGHT).unwrap();
    let held = server.webhook_slots.acquire_many(max).await.unwrap();
    assert_eq!(server.deliver(&Delivery::change(&watch, 2)).await, 503);
    assert_eq!(server.all_jobs().await, 0);
    drop(held);
    assert_eq!(server.deliver(&Delivery::change(&watch, 2)).await, 200);
    assert_eq!(server.pending_pulls().await, 1);

    let big = server
        .client
        .post(format!("{}/webhooks/google", server.base))
        .header("x-goog-channel-id", watch.channel.id.as_str())
        .header("x-goog-resource-state", "exists")
        .header("x-goog-message-number", "3")
        .body(vec![b'x'; calmesh_server::webhooks::MAX_BODY + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
}

async fn healthz(server: &Server) {
    assert_eq!(server.get("/healthz").await, (200, "ok".to_owned()));
}

async fn readyz(server: &Server) {
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({ "status": "ready" }));

    // Without a database: 503 with a reason; /healthz still answers.
    server.close_pool().await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap();
    // Which part, never the driver's text (issue 16, fault 9).
    assert_eq!(reason, "store unavailable");
    assert_eq!(server.get("/healthz").await, (200, "ok".to_owned()));
}

// Issue 16, fault 1: a worker whose task died left /readyz at 200.
async fn readyz_names_workers_that_are_not_running(server: &Server) {
    let alive = server.workers.enter();
    let dying = server.workers.clone();
    let task = tokio::spawn(async move {
        let _running = dying.enter();
        panic!("a worker dies");
    });
    assert!(task.await.unwrap_err().is_panic());
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reason"], "1 of 2 workers not running");
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("calmesh_workers_running 1"), "{metrics}");
    drop(alive);
}

async fn metrics_show_the_queue(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "metrics").await;
    assert_eq!(server.deliver(&Delivery::change(&watch, 2)).await, 200);
    server
        .queue
        .enqueue(JobKind::Cleanup, "cleanup", &json!({}), None)
        .await
        .unwrap();
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "# TYPE calmesh_jobs gauge",
        "calmesh_jobs{state=\"pending\",kind=\"pull_calendar\"} 1",
        "calmesh_jobs{state=\"pending\",kind=\"cleanup\"} 1",
        "calmesh_jobs{state=\"running\",kind=\"pull_calendar\"} 0",
        "calmesh_jobs{state=\"dead\",kind=\"reconcile_rule\"} 0",
        "# TYPE calmesh_jobs_oldest_pending_seconds gauge",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in\n{body}");
    }
    let oldest = body
        .lines()
        .find_map(|l| l.strip_prefix("calmesh_jobs_oldest_pending_seconds "))
        .unwrap();
    assert!(oldest.parse::<f64>().unwrap() >= 0.0, "{oldest}");
    // The facade's counters (the recorder is process-wide: other tests in
    // this process may have counted too).
    assert!(
        body.lines().any(|l| l.starts_with(
            "calmesh_webhook_deliveries_total{provider=\"google\",outcome=\"accepted\"} "
        )),
        "{body}"
    );
    // Refreshed at each scrape.
    let job = server
        .queue
        .claim("w", None, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(job.is_some());
    let (_, body) = server.get("/metrics").await;
    let pending: u64 = [
        "calmesh_jobs{state=\"pending\",kind=\"pull_calendar\"} ",
        "calmesh_jobs{state=\"pending\",kind=\"cleanup\"} ",
    ]
    .iter()
    .map(|prefix| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    })
    .sum();
    assert_eq!(pending, 1, "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("calmesh_jobs{state=\"running\"") && l.ends_with(" 1")),
        "{body}"
    );
}

async fn forged_tokens_are_refused_and_enqueue_nothing(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "forged").await;
    let other = watched_calendar(server.store.as_ref(), "other").await;
    let good = Delivery::change(&watch, 2);
    let forged = [
        Delivery {
            token: Some("token-forgex-0123456789abcdef"),
            ..good
        },
        Delivery {
            token: None,
            ..good
        },
        Delivery {
            token: Some(""),
            ..good
        },
        // Another channel's valid token.
        Delivery {
            token: Some(&other.token),
            ..good
        },
        // The right token, another resource.
        Delivery {
            resource: Some("resource-other"),
            ..good
        },
        Delivery {
            resource: None,
            ..good
        },
    ];
    for delivery in &forged {
        assert_eq!(server.deliver(delivery).await, 403, "{delivery:?}");
    }
    assert_eq!(server.all_jobs().await, 0);
    // A forged delivery does not spend the message number either.
    let channel = server
        .store
        .channel(&watch.channel.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel.last_message, None);
    assert_eq!(server.deliver(&good).await, 200);
    assert_eq!(server.pending_pulls().await, 1);
}

async fn unknown_channels_and_bad_requests(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "unknown").await;
    let good = Delivery::change(&watch, 2);
    assert_eq!(
        server
            .deliver(&Delivery {
                channel: Some("calmesh-never-made"),
                ..good
            })
            .await,
        404
    );
    // Unknown whatever the token.
    assert_eq!(
        server
            .deliver(&Delivery {
                channel: Some("calmesh-never-made"),
                token: None,
                ..good
            })
            .await,
        404
    );
    assert_eq!(
        server
            .deliver(&Delivery {
                channel: None,
                ..good
            })
            .await,
        400
    );
    assert_eq!(
        server
            .deliver(&Delivery {
                state: None,
                ..good
            })
            .await,
        400
    );
    // A deleted channel is unknown.
    server
        .store
        .delete_channel(&watch.channel.id)
        .await
        .unwrap();
    assert_eq!(server.deliver(&good).await, 404);
    assert_eq!(server.all_jobs().await, 0);
    // Only POST.
    let (status, _) = server.get("/webhooks/google").await;
    assert_eq!(status, 405);
}

async fn sync_messages_are_acknowledged_without_a_pull(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "sync").await;
    let sync = Delivery {
        state: Some("sync"),
        ..Delivery::change(&watch, 1)
    };
    assert_eq!(server.deliver(&sync).await, 200);
    assert_eq!(server.deliver(&sync).await, 200);
    assert_eq!(server.all_jobs().await, 0);
    let channel = server
        .store
        .channel(&watch.channel.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel.last_message, Some(1));
    // A sync message with a wrong token is refused all the same.
    let forged = Delivery {
        token: Some("nope"),
        ..sync
    };
    assert_eq!(server.deliver(&forged).await, 403);
}

async fn a_change_enqueues_exactly_one_pending_pull(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "change").await;
    let before = server.queue.now();
    assert_eq!(server.deliver(&Delivery::change(&watch, 2)).await, 200);
    let jobs = server.queue.list(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let calendar = watch.calendar.id.to_string();
    assert_eq!(job.kind, JobKind::PullCalendar);
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.key, format!("pull:{calendar}"));
    assert_eq!(
        job.payload,
        json!({ "calendar": calendar, "reason": "push" })
    );
    assert!(
        job.run_at <= server.queue.now() && job.run_at >= before - chrono::TimeDelta::seconds(1)
    );
    assert_eq!(job.triggers, 1);
    let channel = server
        .store
        .channel(&watch.channel.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel.last_message, Some(2));

    // More changes, and a deletion (not_exists), coalesce into it.
    assert_eq!(server.deliver(&Delivery::change(&watch, 7)).await, 200);
    let deleted = Delivery {
        state: Some("not_exists"),
        ..Delivery::change(&watch, 9)
    };
    assert_eq!(server.deliver(&deleted).await, 200);
    assert_eq!(server.pending_pulls().await, 1);
    assert_eq!(server.all_jobs().await, 1);
    assert_eq!(server.queue.job(job.id).await.unwrap().triggers, 3);

    // Another calendar gets its own.
    let other = watched_calendar(server.store.as_ref(), "change-other").await;
    assert_eq!(server.deliver(&Delivery::change(&other, 2)).await, 200);
    assert_eq!(server.pending_pulls().await, 2);
}

async fn replayed_and_out_of_order_messages(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "replay").await;
    assert_eq!(server.deliver(&Delivery::change(&watch, 5)).await, 200);
    let job = server.queue.list(None, 1).await.unwrap()[0].clone();
    // A retry of 5, and 3 overtaken by 5: acknowledged, not enqueued.
    for number in [5, 3, 4, 5] {
        assert_eq!(server.deliver(&Delivery::change(&watch, number)).await, 200);
    }
    assert_eq!(server.queue.job(job.id).await.unwrap().triggers, 1);
    // A newer one is.
    assert_eq!(server.deliver(&Delivery::change(&watch, 12)).await, 200);
    assert_eq!(server.queue.job(job.id).await.unwrap().triggers, 2);

    // While the pull runs, a replay adds nothing; a new message queues
    // one pull after it.
    let claimed = server
        .queue
        .claim("worker", None, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job.id);
    assert_eq!(server.deliver(&Delivery::change(&watch, 12)).await, 200);
    assert_eq!(server.deliver(&Delivery::change(&watch, 11)).await, 200);
    assert_eq!(server.pending_pulls().await, 0);
    assert_eq!(server.deliver(&Delivery::change(&watch, 13)).await, 200);
    assert_eq!(server.pending_pulls().await, 1);
    let channel = server
        .store
        .channel(&watch.channel.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel.last_message, Some(13));
}

/// 10,000 notifications for 10 calendars, 32 in flight: every one answered
/// 200, exactly 10 pending pulls. Prints the throughput and latencies
/// (never asserted).
async fn a_burst_coalesces_into_one_pull_per_calendar(server: &Server) {
    let mut watches = Vec::new();
    for i in 0..10 {
        watches.push(watched_calendar(server.store.as_ref(), &format!("burst-{i}")).await);
    }
    let result = burst(&server.client, &server.base, &watches, 10_000, 32).await;
    eprintln!("{}, 32 in flight", result.summary(server.backend()));
    assert_eq!(result.failed, 0);
    assert_eq!(server.pending_pulls().await, 10);
    assert_eq!(server.all_jobs().await, 10);
    let queue: &dyn JobQueue = server.queue.as_ref();
    let mut keys: Vec<String> = queue
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.key)
        .collect();
    keys.sort();
    let mut expected: Vec<String> = watches
        .iter()
        .map(|w| format!("pull:{}", w.calendar.id))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    // Each channel saw its highest number.
    for w in &watches {
        let channel = server.store.channel(&w.channel.id).await.unwrap().unwrap();
        assert_eq!(channel.last_message, Some(10_000 / 10 - 1 + 2));
    }

    // One at a time: what a single delivery costs (all coalesced into the
    // pending pull).
    let single = one_at_a_time(&server.client, &server.base, &watches[0], 200, 20_000).await;
    eprintln!("{}, one at a time", single.summary(server.backend()));
    assert_eq!(single.failed, 0);
    assert_eq!(server.all_jobs().await, 10);
}

async fn a_database_outage_answers_503_so_google_retries(server: &Server) {
    let watch = watched_calendar(server.store.as_ref(), "outage").await;
    server.close_pool().await;
    assert_eq!(server.deliver(&Delivery::change(&watch, 2)).await, 503);
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 200, "a scrape still answers");
    assert!(!body.contains("calmesh_jobs{"), "{body}");
}
