//! Scale-out on PostgreSQL: three `calmesh worker` processes and one
//! `calmesh serve --no-workers` (the webhook receiver) share a database;
//! 300 emulated calendars in 100 busy groups of three; continuous edits
//! reach calmesh by push; one worker is SIGKILLed midway. At the end every
//! group has converged, no block is duplicated, no job is dead, and the
//! survivors stop cleanly on SIGTERM. The figures (setup time, time to
//! converge, API calls, notifications) are printed: run with --nocapture.
//!
//! The killed worker nearly always holds a job, and until its lease ends no
//! other job of that key (that calendar's pulls, that rule's runs) runs: the
//! workers here hold leases of 10 s (`CALMESH_JOB_LEASE_SECONDS`; 60 s by
//! default), so the groups it holds up converge after the takeover, the
//! others within seconds of the last edit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{
    Calmesh, Emu, LogsOnPanic, Running, at, calls_between, converged, duplicate_blocks, terminate,
};
use serde_json::{Value, json};

const CALENDARS: usize = 300;
const GROUP: usize = 3;
/// How long the edits go on; the kill comes halfway.
const EDITING: Duration = Duration::from_secs(18);
/// `calmesh` processes run side by side during the setup.
const SETUP_PROCESSES: usize = 4;
/// How long the groups the killed worker did not hold up may take to
/// converge once the edits stop.
const CONVERGE_WITHIN: Duration = Duration::from_secs(120);
const EVENTS_ROUTE: &str = "GET /calendar/v3/calendars/{calendarId}/events";

/// A small deterministic generator (xorshift64*); the seed is printed so a
/// failure's edits can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    /// A whole hour in the next 60 days: (days, hour).
    fn slot(&mut self) -> (i64, i64) {
        let days = 1 + i64::try_from(self.below(60)).unwrap();
        (days, i64::try_from(self.below(22)).unwrap())
    }
}

/// An hour-long event with details a block must not show.
fn event((days, hour): (i64, i64)) -> Value {
    json!({"summary": "x", "description": "secret", "location": "room 1",
        "start": {"dateTime": at(days, hour)}, "end": {"dateTime": at(days, hour + 1)}})
}

fn moved_to((days, hour): (i64, i64)) -> Value {
    json!({"start": {"dateTime": at(days, hour)}, "end": {"dateTime": at(days, hour + 1)}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_converge_300_calendars_with_a_worker_killed_midway() {
    let Some((cm, schema)) = Calmesh::postgres().await else {
        eprintln!("skipped: the scale test runs on PostgreSQL only");
        return;
    };
    let _logs = LogsOnPanic(cm.dir.path().to_owned());
    let test_started = Instant::now();
    let seed = std::env::var("CALMESH_SCALE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) | 1
        });
    println!("seed {seed} (CALMESH_SCALE_SEED replays the edits)");
    let mut rng = Rng(seed);

    // ---- Setup: accounts, groups, two events in each calendar.
    let mut emu = Emu::start().await;
    let emails: Vec<String> = (0..CALENDARS)
        .map(|i| format!("u{i:03}@example.com"))
        .collect();
    for e in &emails {
        emu.add_account(e).await;
    }
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let groups: Vec<&[&str]> = refs.chunks(GROUP).collect();
    // One `calmesh` process per account and per rule, SETUP_PROCESSES at a
    // time (the first alone: it creates the default user).
    let started = Instant::now();
    cm.add_accounts(&emu, &refs[..1]);
    std::thread::scope(|scope| {
        for chunk in refs[1..].chunks(CALENDARS.div_ceil(SETUP_PROCESSES)) {
            let (cm, emu) = (&cm, &emu);
            scope.spawn(move || cm.add_accounts(emu, chunk));
        }
    });
    let accounts_took = started.elapsed();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let per_thread = groups.len().div_ceil(SETUP_PROCESSES);
        for (n, chunk) in groups.chunks(per_thread).enumerate() {
            let cm = &cm;
            scope.spawn(move || {
                for (i, group) in chunk.iter().enumerate() {
                    cm.add_busy_rule(&format!("group{:03}", n * per_thread + i), group);
                }
            });
        }
    });
    let rules_took = started.elapsed();
    // The person's own events per calendar (ids), as the edits change them.
    let mut own: Vec<Vec<String>> = vec![Vec::new(); CALENDARS];
    for (i, email) in refs.iter().enumerate() {
        for _ in 0..2 {
            let created = emu.insert(email, event(rng.slot())).await;
            own[i].push(created["id"].as_str().unwrap().to_owned());
        }
    }
    println!(
        "setup: {CALENDARS} `calmesh accounts add` in {accounts_took:.1?}, {} `calmesh rules \
         add busy` in {rules_took:.1?} ({SETUP_PROCESSES} processes at a time)",
        groups.len()
    );
    emu.reset_stats().await;

    // ---- The webhook receiver, then three workers that watch calendars at
    // its URL. The owners' interval is 15 minutes and the safety poll 6
    // hours: after each calendar's first pull, only push brings changes in.
    let (mut serve, public) = cm.spawn_serve(
        &[
            "--no-workers",
            "--listen",
            "127.0.0.1:0",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );
    let mut workers = Vec::new();
    for n in 0..3 {
        let (_, log) = cm.log_file(&format!("worker{n}.log"));
        let child = cm
            .command(&["worker", "--workers", "2", "--tick-seconds", "1"])
            .env("CALMESH_PUBLIC_URL", &public)
            .env("CALMESH_JOB_LEASE_SECONDS", "10")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        workers.push(Running(child));
    }
    let workers_started = Instant::now();
    let mut checks = Checks::default();
    let all: Vec<usize> = (0..groups.len()).collect();
    let first_sync = checks
        .wait(&emu, &groups, &all, Duration::from_secs(180))
        .await;
    // Every calendar is watched.
    let started = Instant::now();
    loop {
        let n = channels(&emu).await;
        if n == CALENDARS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{n} channels, want {CALENDARS}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_stats = emu.stats().await;
    println!(
        "first sync: every group converged {first_sync:.1?} after the workers started; \
         API calls {} (the test's own listings: {})",
        first_stats["by_route"], checks.listings
    );
    let checks_before_edits = checks.listings;

    // ---- Continuous edits; the first worker is SIGKILLed halfway.
    let mut edits = BTreeMap::<&str, u64>::new();
    let edits_started = Instant::now();
    let mut killed: Option<(String, Vec<Value>)> = None;
    while edits_started.elapsed() < EDITING {
        if killed.is_none() && edits_started.elapsed() >= EDITING / 2 {
            let victim = &mut workers[0];
            let tag = format!(":{}:", victim.id());
            victim.kill().unwrap();
            victim.wait().unwrap();
            // The jobs it held stay `running` until their lease expires.
            let held: Vec<Value> = cm
                .jobs(Some("running"))
                .into_iter()
                .filter(|j| j["worker"].as_str().is_some_and(|w| w.contains(&tag)))
                .collect();
            println!(
                "SIGKILLed worker {} after {:.1?} of edits; it held {} jobs: {}",
                victim.id(),
                edits_started.elapsed(),
                held.len(),
                held.iter()
                    .map(|j| format!("{} (lease until {})", j["key"], j["leased_until"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            killed = Some((tag, held));
        }
        let i = rng.below(CALENDARS);
        let email = refs[i];
        let op = if own[i].len() <= 1 { 0 } else { rng.below(10) };
        if op < 4 {
            let created = emu.insert(email, event(rng.slot())).await;
            own[i].push(created["id"].as_str().unwrap().to_owned());
            *edits.entry("insert").or_default() += 1;
        } else if op < 8 {
            let id = &own[i][rng.below(own[i].len())];
            emu.patch(email, id, moved_to(rng.slot())).await;
            *edits.entry("patch").or_default() += 1;
        } else {
            let k = rng.below(own[i].len());
            let id = own[i].swap_remove(k);
            emu.delete(email, &id).await;
            *edits.entry("delete").or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total_edits: u64 = edits.values().sum();
    println!("edits: {edits:?} in {:.1?}", edits_started.elapsed());
    let (killed_tag, held) = killed.unwrap();

    // ---- Convergence. No second job of a key runs while one is `running`,
    // so a job the killed worker held stops its key (a calendar's pulls or a
    // rule's runs) until the lease expires and another worker takes it over.
    // The groups it holds up get the lease's time on top.
    let held_up = held_up_groups(&cm, &groups, &held);
    let (others, waiting): (Vec<usize>, Vec<usize>) =
        all.iter().partition(|g| !held_up.contains(g));
    let took = checks.wait(&emu, &groups, &others, CONVERGE_WITHIN).await;
    println!(
        "converged: {} groups {took:.1?} after the last edit",
        others.len()
    );
    if !waiting.is_empty() {
        let lease_left = held
            .iter()
            .filter_map(|j| j["leased_until"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc) - calmesh_clock::now())
            .max()
            .and_then(|d| d.to_std().ok())
            .unwrap_or_default();
        println!(
            "{} groups wait for the killed worker's leases (another {lease_left:.0?})",
            waiting.len()
        );
        let took = checks
            .wait(&emu, &groups, &waiting, lease_left + CONVERGE_WITHIN)
            .await;
        println!(
            "converged: the {} held-up groups {:.1?} after the last edit",
            waiting.len(),
            took
        );
    }
    let converged_stats = emu.stats().await;

    // ---- The final state, in full. `converged` compares each calendar's
    // blocks with the busy events of the others as multisets of times, so a
    // duplicated block already fails it; `duplicate_blocks` says it outright:
    // one live block per (rule, source event) in each calendar.
    let mut blocks = 0;
    for group in &groups {
        let counts = converged(&emu, group).await.unwrap();
        blocks += counts.values().sum::<usize>();
    }
    for email in &refs {
        let dups = duplicate_blocks(&emu, email).await;
        assert!(dups.is_empty(), "duplicated blocks in {email}: {dups:#?}");
    }
    let own_events: usize = own.iter().map(Vec::len).sum();
    assert_eq!(blocks, own_events * (GROUP - 1), "blocks in all calendars");
    println!("final: {own_events} events, {blocks} blocks, none duplicated");
    let rules: Value = serde_json::from_str(&cm.ok(&["rules", "list", "--json"])).unwrap();
    for rule in rules.as_array().unwrap() {
        assert_eq!(rule["state"], "active", "{rule}");
    }

    // ---- Push did the work: each edit was delivered to `serve` (the
    // emulator counts a message as sent when serve answered it) and none of
    // them failed. (During the first sync a channel's `sync` message can
    // arrive before calmesh has recorded the channel, and gets 404; that
    // costs nothing and is not counted here.)
    let sent = counter(&converged_stats, &first_stats, "notifications_sent");
    let failed = counter(&converged_stats, &first_stats, "notifications_failed");
    assert!(
        sent >= total_edits,
        "{sent} notifications for {total_edits} edits"
    );
    assert_eq!(failed, 0, "notifications failed: {converged_stats:#}");
    assert_eq!(converged_stats["notifications_dropped"], 0);

    // ---- Stable: a few seconds later calmesh has written nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = emu.stats().await;
    let writes: BTreeMap<String, u64> = calls_between(&converged_stats, &later)
        .into_iter()
        .filter(|(route, _)| !route.starts_with("GET") && !route.contains("/token"))
        .collect();
    assert!(writes.is_empty(), "writes after convergence: {writes:?}");

    // ---- The figures.
    let mut calls = calls_between(&first_stats, &converged_stats);
    for (route, n) in [
        ("POST /calendar/v3/calendars/{calendarId}/events", "insert"),
        (
            "PATCH /calendar/v3/calendars/{calendarId}/events/{eventId}",
            "patch",
        ),
        (
            "DELETE /calendar/v3/calendars/{calendarId}/events/{eventId}",
            "delete",
        ),
    ] {
        if let Some(calls) = calls.get_mut(route) {
            *calls -= edits.get(n).copied().unwrap_or(0);
        }
    }
    if let Some(calls) = calls.get_mut(EVENTS_ROUTE) {
        *calls -= checks.listings - checks_before_edits;
    }
    calls.retain(|_, n| *n > 0);
    println!(
        "calmesh's API calls from the first edit to convergence, for {total_edits} edits: \
         {calls:?}"
    );
    println!(
        "notifications: {sent} sent while editing and converging; over the whole run \
         sent {}, failed {} (the first sync's early `sync` messages), dropped {}",
        converged_stats["notifications_sent"],
        converged_stats["notifications_failed"],
        converged_stats["notifications_dropped"]
    );
    let metrics = reqwest::get(format!("{public}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deliveries: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("calmesh_webhook_deliveries_total"))
        .collect();
    println!("serve's webhook deliveries: {deliveries:?}");

    // ---- Queue: nothing dead; the killed worker's jobs were taken over or
    // still wait for their lease.
    let jobs = cm.jobs(None);
    let mut by_state = BTreeMap::<String, BTreeMap<String, u64>>::new();
    for j in &jobs {
        *by_state
            .entry(j["state"].as_str().unwrap().to_owned())
            .or_default()
            .entry(j["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    println!("jobs: {by_state:?}");
    let dead = cm.jobs(Some("dead"));
    assert!(dead.is_empty(), "dead jobs: {dead:#?}");
    let held_ids: BTreeSet<String> = held.iter().map(|j| j["id"].to_string()).collect();
    for j in jobs
        .iter()
        .filter(|j| held_ids.contains(&j["id"].to_string()))
    {
        println!(
            "the killed worker's job {} is now {} (attempts {}, last error {})",
            j["key"], j["state"], j["attempts"], j["last_error"]
        );
        let mine = j["worker"]
            .as_str()
            .is_some_and(|w| w.contains(&killed_tag));
        assert!(j["state"] == "done" || mine, "{j}");
    }

    // ---- The survivors and the server stop cleanly.
    for child in workers.iter_mut().skip(1) {
        let exit = terminate(child, Duration::from_secs(30)).await;
        assert!(exit.success(), "worker: {exit:?}");
    }
    let exit = terminate(&mut serve, Duration::from_secs(30)).await;
    assert!(exit.success(), "serve: {exit:?}");
    println!(
        "whole test {:.1?}, of which the workers ran {:.1?}",
        test_started.elapsed(),
        workers_started.elapsed()
    );
    schema.drop_now().await.unwrap();
}

/// The number of live channels at the emulator.
async fn channels(emu: &Emu) -> usize {
    emu.control("GET", "channels", Value::Null).await["channels"]
        .as_array()
        .unwrap()
        .len()
}

fn counter(now: &Value, before: &Value, name: &str) -> u64 {
    now[name].as_u64().unwrap() - before[name].as_u64().unwrap()
}

/// Convergence polls, counting the listings they make (to tell them from
/// calmesh's in the emulator's figures).
#[derive(Default)]
struct Checks {
    listings: u64,
}

impl Checks {
    /// Polls until the groups `which` have converged; returns how long it
    /// took. A group that converged is not looked at again (the final check
    /// looks at every group).
    async fn wait(
        &mut self,
        emu: &Emu,
        groups: &[&[&str]],
        which: &[usize],
        within: Duration,
    ) -> Duration {
        let started = Instant::now();
        let mut pending = which.to_vec();
        loop {
            let mut still = Vec::new();
            let mut why = String::new();
            for &g in &pending {
                self.listings += u64::try_from(groups[g].len()).unwrap();
                if let Err(e) = converged(emu, groups[g]).await {
                    if why.is_empty() {
                        why = e;
                    }
                    still.push(g);
                }
            }
            if still.is_empty() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{} groups not converged after {within:?}; the first: {why}",
                still.len()
            );
            pending = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The groups a held job stops: a rule's (`rule:<id>`), or those of a
/// calendar (`pull:<calendar id>`).
fn held_up_groups(cm: &Calmesh, groups: &[&[&str]], held: &[Value]) -> BTreeSet<usize> {
    let rules: Value = serde_json::from_str(&cm.ok(&["rules", "list", "--json"])).unwrap();
    let accounts: Value = serde_json::from_str(&cm.ok(&["accounts", "list", "--json"])).unwrap();
    let mut email_of = BTreeMap::new();
    for a in accounts.as_array().unwrap() {
        for c in a["calendars"].as_array().unwrap() {
            email_of.insert(
                c["id"].as_str().unwrap().to_owned(),
                c["remote_id"].as_str().unwrap().to_owned(),
            );
        }
    }
    let mut emails = BTreeSet::new();
    for job in held {
        let key = job["key"].as_str().unwrap();
        if let Some(calendar) = key.strip_prefix("pull:") {
            emails.insert(email_of[calendar].clone());
        } else if let Some(rule) = key.strip_prefix("rule:") {
            let rule = rules
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == rule)
                .unwrap();
            for c in rule["config"]["calendars"].as_array().unwrap() {
                emails.insert(email_of[c.as_str().unwrap()].clone());
            }
        }
    }
    (0..groups.len())
        .filter(|g| groups[*g].iter().any(|e| emails.contains(*e)))
        .collect()
}
