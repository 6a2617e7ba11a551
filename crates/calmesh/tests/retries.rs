//! What is retried, when, and what one failure stops (issue 16, faults
//! 3–5): a provider's long `Retry-After` becomes the job's next run time, a
//! rule whose writes failed transiently is run again under `serve`, and one
//! item that keeps failing stops neither its account nor the rest of the run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Calmesh, Emu, at, is_block};
use serde_json::{Value, json};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";

/// Ann's four events, by client-chosen id so that the plan's order (by
/// source id) is known: the poisoned one, at minute 17, comes first.
async fn ann_events(emu: &Emu) {
    for (id, day, hour, minute) in [
        ("aaaa0poison", 2, 13, 17),
        ("bbbb0good01", 3, 9, 0),
        ("bbbb0good02", 4, 9, 0),
        ("bbbb0good03", 5, 9, 0),
    ] {
        let start = shifted(&at(day, hour), minute);
        let end = shifted(&at(day, hour + 1), minute);
        emu.insert(
            ANN,
            json!({"id": id, "summary": id, "start": {"dateTime": start},
                   "end": {"dateTime": end}}),
        )
        .await;
    }
}

fn shifted(rfc3339: &str, minutes: i64) -> String {
    let at = DateTime::parse_from_rfc3339(rfc3339).unwrap();
    (at + chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// Every write of the block for Ann's minute-17 event answers 503, as a
/// backend that keeps failing one item; everything else works.
fn poison() -> Value {
    json!({"server_error": {"status": 503, "matching": ":17:00", "account": BOB}})
}

async fn bob_blocks(emu: &Emu) -> usize {
    emu.instances(BOB)
        .await
        .iter()
        .filter(|e| is_block(e))
        .count()
}

/// The first pending job of `kind` that has failed at least once (waits
/// up to a minute for it).
async fn retried_job(cm: &Calmesh, kind: &str) -> Value {
    let started = Instant::now();
    loop {
        let retried = cm
            .jobs(Some("pending"))
            .into_iter()
            .find(|j| j["kind"] == kind && j["attempts"].as_u64() >= Some(1));
        if let Some(job) = retried {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no retried {kind} job; jobs: {:#?}",
            cm.jobs(None)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn setup() -> (Emu, Calmesh) {
    let mut emu = Emu::start().await;
    emu.add_account(ANN).await;
    emu.add_account(BOB).await;
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &[ANN, BOB]);
    cm.add_busy_rule("work", &[ANN, BOB]);
    ann_events(&emu).await;
    (emu, cm)
}

// Fault 5: a write that failed as Unavailable after its retries marked the
// whole account unavailable, so every later write to it was "not tried".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_write_fails_that_item_and_the_account_goes_on() {
    let (emu, cm) = setup().await;
    emu.faults(poison()).await;

    let out = cm.run(&["sync", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = &report["rules"][0];
    assert_eq!(rule["status"], "partial", "{report:#}");
    assert_eq!(rule["created"], 3, "{report:#}");
    assert_eq!(rule["failed"], 1, "{report:#}");
    assert_eq!(rule["retryable"], 1, "{report:#}");
    let errors = rule["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("503"),
        "{errors:#?}"
    );
    assert_eq!(bob_blocks(&emu).await, 3);
    let status: Value = serde_json::from_str(&cm.ok(&["status", "--json"])).unwrap();
    for account in status["accounts"].as_array().unwrap() {
        assert_eq!(account["status"], "ok", "{status:#}");
    }

    // The next sync writes only the block that failed.
    emu.faults(json!({"reset": true})).await;
    let report = cm.sync();
    assert_eq!(report["rules"][0]["created"], 1, "{report:#}");
    assert_eq!(report["rules"][0]["status"], "ok", "{report:#}");
    assert_eq!(bob_blocks(&emu).await, 4);
}

// Fault 4: under `serve`, a rule run that ended `partial` was complete, so
// its failed writes waited for the next change at the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_partial_rule_again_until_the_failed_write_lands() {
    let (emu, cm) = setup().await;
    emu.faults(poison()).await;
    let (mut serve, _base) = cm.spawn_serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );

    // The rule's run fails as a job (retried with backoff), not as done.
    let failed = retried_job(&cm, "reconcile_rule").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("may pass on a retry"), "{failed:#}");
    assert_eq!(bob_blocks(&emu).await, 3);

    // No change at the source: the retry alone brings the fourth block.
    emu.faults(json!({"reset": true})).await;
    let started = Instant::now();
    while bob_blocks(&emu).await < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the failed write was not retried; jobs: {:#?}",
            cm.jobs(None)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let exit = common::terminate(&mut serve, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(bob_blocks(&emu).await, 4);
    assert!(common::duplicate_blocks(&emu, BOB).await.is_empty());
}

// Fault 3: the worker handed `retry_after: None` to the queue, and a 5xx
// with a day's Retry-After was slept on inside the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_becomes_the_jobs_next_run_time() {
    let (emu, cm) = setup().await;
    const DAY: u64 = 86_400;
    emu.faults(json!({"server_error": {"status": 503, "retry_after_secs": DAY, "account": BOB}}))
        .await;
    let (mut serve, _base) = cm.spawn_serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );
    // Without the fix the worker sleeps a day inside the call: no job
    // ever comes back as pending.
    let job = retried_job(&cm, "pull_calendar").await;
    let failed_at = calmesh_clock::now();
    let run_at: DateTime<Utc> = job["run_at"].as_str().unwrap().parse().unwrap();
    let wait = (run_at - failed_at).num_seconds();
    assert!(
        wait > (DAY - 120) as i64 && wait <= DAY as i64 + 60,
        "the retry runs in {wait} s, not after the day asked: {job:#}"
    );
    assert!(
        job["last_error"].as_str().unwrap().contains("503"),
        "{job:#}"
    );
    // Ann's calendar was pulled all the same.
    let done: Vec<Value> = cm
        .jobs(Some("done"))
        .into_iter()
        .filter(|j| j["kind"] == "pull_calendar")
        .collect();
    assert!(!done.is_empty(), "{:#?}", cm.jobs(None));
    let exit = common::terminate(&mut serve, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
}
