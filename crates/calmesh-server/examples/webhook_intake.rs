//! Webhook intake figures: how many Google push notifications per second the
//! server takes, and their latency, with each pull enqueued durably (the
//! job is committed before the 200), on a SQLite file and on PostgreSQL.
//!
//! ```sh
//! cargo run --release -p calmesh-server --example webhook_intake -- \
//!     [--notifications 10000] [--calendars 10] [--in-flight 32]
//! ```
//!
//! PostgreSQL runs when `CALMESH_TEST_POSTGRES_URL` names a server (in a
//! schema of its own, dropped after). The server, client and database share
//! this machine, so the figures are a floor for the server alone. Nothing is
//! asserted but the coalescing: one pending pull per calendar.
//! `bench/webhook_intake.sh` runs it in a release build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Server, burst, one_at_a_time, watched_calendar};

/// Options from the command line.
struct Options {
    notifications: usize,
    calendars: usize,
    in_flight: usize,
}

fn options() -> Options {
    let mut options = Options {
        notifications: 10_000,
        calendars: 10,
        in_flight: 32,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0);
        let Some(value) = value else {
            eprintln!("usage: webhook_intake [--notifications N] [--calendars N] [--in-flight N]");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--notifications" => options.notifications = value,
            "--calendars" => options.calendars = value,
            "--in-flight" => options.in_flight = value,
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    options
}

async fn run(server: Server, options: &Options) {
    let mut watches = Vec::new();
    for i in 0..options.calendars {
        watches.push(watched_calendar(server.store.as_ref(), &format!("intake-{i}")).await);
    }
    // A short warm-up (connections, caches), then the measured burst.
    burst(
        &server.client,
        &server.base,
        &watches,
        200,
        options.in_flight,
    )
    .await;
    let result = burst(
        &server.client,
        &server.base,
        &watches,
        options.notifications,
        options.in_flight,
    )
    .await;
    println!(
        "{} ({} calendars, {} in flight, {} not 200)",
        result.summary(server.backend()),
        options.calendars,
        options.in_flight,
        result.failed
    );
    let single = one_at_a_time(
        &server.client,
        &server.base,
        &watches[0],
        1_000,
        options.notifications as i64 + 10,
    )
    .await;
    println!(
        "{} (one at a time, {} not 200)",
        single.summary(server.backend()),
        single.failed
    );
    let pending = server.pending_pulls().await;
    assert_eq!(
        pending, options.calendars as u64,
        "one pending pull per calendar"
    );
    server.finish().await;
}

#[tokio::main]
async fn main() {
    let options = options();
    run(Server::sqlite().await, &options).await;
    match Server::postgres().await {
        Some(server) => run(server, &options).await,
        None => println!("PostgreSQL: skipped (CALMESH_TEST_POSTGRES_URL not set)"),
    }
}
