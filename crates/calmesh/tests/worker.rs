//! `calmesh worker`: the scheduler pulls never-synced calendars, pull jobs
//! trigger rule runs, blocks converge, SIGTERM stops it cleanly; `status`
//! and `jobs` show the result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Calmesh, Emu, Running, assert_converged, at, is_block};
use serde_json::{Value, json};

const ALL: [&str; 3] = ["ann@example.com", "bob@example.com", "cat@example.com"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_converges_a_busy_group_and_stops_on_sigterm() {
    let mut emu = Emu::start().await;
    for e in ALL {
        emu.add_account(e).await;
    }
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &ALL);
    cm.add_busy_rule("work", &ALL);
    for (i, email) in (2i64..).zip(ALL) {
        emu.insert(
            email,
            json!({"summary": "x", "start": {"dateTime": at(i, 9)},
            "end": {"dateTime": at(i, 10)}}),
        )
        .await;
    }
    // A stand-in for calmesh's public URL: counts Google's deliveries.
    let (tx, mut deliveries) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/webhooks/google",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let tx = tx.clone();
            async move {
                let state = headers
                    .get("x-goog-resource-state")
                    .and_then(|v| v.to_str().ok());
                let _ = tx.send(state.unwrap_or("").to_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (_, log) = cm.log_file("worker.log");
    let mut child = Running(
        cm.command(&["worker", "--workers", "2", "--tick-seconds", "1"])
            .env("CALMESH_PUBLIC_URL", &public)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    loop {
        let mut blocks = 0;
        for e in ALL {
            blocks += emu
                .instances(e)
                .await
                .iter()
                .filter(|x| is_block(x))
                .count();
        }
        if blocks == 6 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no convergence: {blocks} blocks"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_converged(&emu, &ALL).await;
    // Each calendar is watched once it was pulled: three channels, each
    // announced with a sync message.
    let started = Instant::now();
    let channels = loop {
        let listed = emu.control("GET", "channels", Value::Null).await;
        let channels = listed["channels"].as_array().unwrap().clone();
        if channels.len() == 3 || started.elapsed() > Duration::from_secs(20) {
            break channels;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(channels.len(), 3, "{channels:#?}");
    for c in &channels {
        assert_eq!(c["address"], format!("{public}/webhooks/google"));
    }
    let mut syncs = 0;
    while syncs < 3 {
        let state = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
            .await
            .unwrap()
            .unwrap();
        if state == "sync" {
            syncs += 1;
        }
    }

    let exit = common::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");

    let status: Value = serde_json::from_str(&cm.ok(&["status", "--json"])).unwrap();
    for account in status["accounts"].as_array().unwrap() {
        assert_eq!(account["status"], "ok");
        assert!(
            account["calendars"][0]["last_sync_at"].is_string(),
            "{status:#}"
        );
    }
    assert!(
        status["queue"]["by_state"]["done"].as_u64().unwrap() >= 4,
        "{status:#}"
    );
    let jobs: Value =
        serde_json::from_str(&cm.ok(&["jobs", "list", "--state", "done", "--json"])).unwrap();
    let kinds: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"pull_calendar") && kinds.contains(&"reconcile_rule"),
        "{kinds:?}"
    );
}

async fn blocks(emu: &Emu) -> usize {
    let mut n = 0;
    for e in ALL {
        n += emu
            .instances(e)
            .await
            .iter()
            .filter(|x| is_block(x))
            .count();
    }
    n
}

async fn wait_for_blocks(emu: &Emu, want: usize, within: Duration) {
    let started = Instant::now();
    loop {
        let n = blocks(emu).await;
        if n == want {
            return;
        }
        assert!(started.elapsed() < within, "{n} blocks, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_follows_push_notifications_without_polling() {
    let mut emu = Emu::start().await;
    for e in ALL {
        emu.add_account(e).await;
    }
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &ALL);
    cm.add_busy_rule("work", &ALL);
    emu.insert(
        ALL[0],
        json!({"summary": "x", "start": {"dateTime": at(2, 9)}, "end": {"dateTime": at(2, 10)}}),
    )
    .await;
    let (mut child, base) = cm.spawn_serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );
    wait_for_blocks(&emu, 2, Duration::from_secs(60)).await;
    // Channels for the three calendars.
    let started = Instant::now();
    while emu.control("GET", "channels", Value::Null).await["channels"]
        .as_array()
        .unwrap()
        .len()
        < 3
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no channels");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The owners' interval is 15 minutes: what follows can only come by push.
    emu.insert(
        ALL[1],
        json!({"summary": "y", "start": {"dateTime": at(3, 9)}, "end": {"dateTime": at(3, 10)}}),
    )
    .await;
    wait_for_blocks(&emu, 4, Duration::from_secs(30)).await;
    assert_converged(&emu, &ALL).await;

    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("calmesh_jobs{"), "{metrics}");
    // What the workers did, in the process's own recorder.
    for series in [
        "calmesh_webhook_deliveries_total{provider=\"google\",outcome=",
        "calmesh_provider_requests_total{provider=\"google\",status=\"200\"}",
        "calmesh_job_duration_seconds_bucket{kind=\"pull_calendar\",outcome=\"ok\",le=",
        "calmesh_job_duration_seconds_bucket{kind=\"reconcile_rule\",outcome=\"ok\",le=",
        "calmesh_runs_total{kind=\"pull\",outcome=\"ok\"}",
        "calmesh_runs_total{kind=\"sync\",outcome=\"ok\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }

    let exit = common::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
}

/// A running service picks up an account connected again with new
/// credentials: its old provider handle (with the revoked token) is not
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_new_credentials_of_an_account_added_again() {
    const TWO: [&str; 2] = ["ann@example.com", "bob@example.com"];
    let mut emu = Emu::start().await;
    for e in TWO {
        emu.add_account(e).await;
    }
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &TWO);
    cm.add_busy_rule("work", &TWO);
    emu.insert(
        TWO[1],
        json!({"summary": "x", "start": {"dateTime": at(2, 9)}, "end": {"dateTime": at(2, 10)}}),
    )
    .await;
    let (mut child, _base) = cm.spawn_serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );
    async fn ann_blocks(emu: &Emu) -> usize {
        emu.instances("ann@example.com")
            .await
            .iter()
            .filter(|e| is_block(e))
            .count()
    }
    let started = Instant::now();
    while ann_blocks(&emu).await < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no first block"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Wait for both channels, then revoke ann's grant: the next write to
    // her calendar fails and marks her account needs_reauth.
    while emu.control("GET", "channels", Value::Null).await["channels"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no channels");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emu.control("POST", &format!("accounts/{}/revoke", TWO[0]), json!({}))
        .await;
    emu.insert(
        TWO[1],
        json!({"summary": "y", "start": {"dateTime": at(3, 9)}, "end": {"dateTime": at(3, 10)}}),
    )
    .await;
    let started = Instant::now();
    loop {
        let status: Value = serde_json::from_str(&cm.ok(&["status", "--json"])).unwrap();
        if status["accounts"][0]["status"] == "needs_reauth" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "ann was not marked: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Connected again (fresh tokens from the emulator), while serve runs.
    emu.add_account(TWO[0]).await;
    cm.add_accounts(&emu, &TWO[..1]);
    emu.insert(
        TWO[1],
        json!({"summary": "z", "start": {"dateTime": at(4, 9)}, "end": {"dateTime": at(4, 10)}}),
    )
    .await;
    let started = Instant::now();
    while ann_blocks(&emu).await < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "ann has {} blocks, want 3",
            ann_blocks(&emu).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_converged(&emu, &TWO).await;
    let exit = common::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn preferences_are_shown_and_changed() {
    let cm = Calmesh::new();
    assert_eq!(
        cm.ok(&["preferences"]).trim(),
        "auto sync on, every 15 minutes"
    );
    cm.ok(&[
        "preferences",
        "--auto-sync",
        "off",
        "--interval-minutes",
        "30",
    ]);
    let prefs: Value = serde_json::from_str(&cm.ok(&["preferences", "--json"])).unwrap();
    assert_eq!(prefs, json!({"auto_sync": false, "interval_minutes": 30}));
    cm.ok(&["preferences", "--auto-sync", "on"]);
    assert_eq!(
        cm.ok(&["preferences"]).trim(),
        "auto sync on, every 30 minutes"
    );
    for bad in [["--interval-minutes", "0"], ["--auto-sync", "maybe"]] {
        let mut args = vec!["preferences"];
        args.extend(bad);
        let out = cm.run(&args);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad[0]), "{err}");
    }
}
